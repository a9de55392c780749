"""What one cycle did (``CycleOutcome``), its summary event, and when a run has nothing usable left.

Invariants:
- A run is ``failed`` (nothing published) only when nothing usable remains: no symbol collected or analysed, or the
  benchmark pair the market status follows (``BTC/<quote>``, when the universe holds it) was left out; the error
  says which (``benchmark BTC/USDT left out: ...``). Otherwise it publishes, ``partial`` when any symbol is left out.
- ``run_finished`` carries run id, exchange, status, counts, every symbol's reason, the tickers' source, the
  duration and the run's error.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from app.analysis.engine import BENCHMARK_BASE
from app.domain import RunStatus, TickersSource

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    """What one cycle did, for logs, metrics and the ``--once`` exit code."""

    run_id: str
    exchange: str
    status: RunStatus
    symbols_total: int
    symbols_ok: int
    duration_s: float
    errors: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    exchange_errors: int = 0
    tickers_source: TickersSource | None = None


def new_run_id(now_ms: int) -> str:
    """A sortable, unique run id: the wall-clock millisecond in hex followed by random hex."""
    return f"{now_ms:012x}{uuid.uuid4().hex[:20]}"


def missing_benchmark(universe: Sequence[str], analysed: Collection[str], errors: Mapping[str, str]) -> str | None:
    """Why the run cannot publish because its benchmark pair was left out, or None."""
    for symbol in universe:
        if symbol.split("/")[0] == BENCHMARK_BASE and symbol not in analysed:
            why = errors.get(symbol, "not analysed")
            return f"benchmark {symbol} left out ({why}): the market status follows it"
    return None


def log_run_finished(outcome: CycleOutcome, *, now_ms: int | None, logger: Any = log) -> None:
    """The run's summary event: run id, exchange, status, counts, errors and duration."""
    logger.info(
        "run_finished",
        run_id=outcome.run_id,
        exchange=outcome.exchange,
        status=str(outcome.status),
        now_ms=now_ms,
        symbols=outcome.symbols_total,
        symbols_ok=outcome.symbols_ok,
        symbols_failed=len(outcome.errors),
        exchange_errors=outcome.exchange_errors,
        errors=dict(outcome.errors),
        tickers_source=None if outcome.tickers_source is None else str(outcome.tickers_source),
        duration_s=round(outcome.duration_s, 3),
        error=outcome.error,
    )
