"""``dantaro benchmark refit``: one whole refit over many symbols' stored real 1h candles, its wall time and memory.

Invariants: the candles are real (``dantaro benchmark refit`` builds them as the analysis benchmark does: the bundled
1h series cycled, shifted and scaled) and are stored in a throwaway SQLite database before the clock starts. The
timed call is exactly ``ModelRefit.run``: the database read (``CandleRepository.load_columns``), the factor history,
``fit_models`` for every served horizon, the upsert and the commit. It runs in a fresh child process, so the candles
built for the benchmark do not count: the reported peak is the child's ``VmHWM`` (``/proc/self/status``: the kernel's
exact high-water mark of this process image's resident set, reset by exec unlike ``ru_maxrss``; psutil has no peak
figure on Linux and sampling would miss short spikes), next to its resident set before the refit (``VmRSS``:
interpreter and imports). Elsewhere ``ru_maxrss`` stands in for both.
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog

from app.config import Settings
from app.domain import Candle, timeframe_ms
from app.storage import migrate
from app.storage.db import make_engine, make_session_factory
from app.storage.repositories import CandleRepository
from app.worker.analysis_options import analysis_options
from app.worker.refit import ModelRefit

EXCHANGE = "benchmark"
TIMEFRAME = "1h"


@dataclass(frozen=True, slots=True)
class RefitBenchmark:
    """What one timed refit took and stored."""

    symbols: int
    candles: int  # stored per symbol
    window_days: float
    wall_s: float
    rss_before_mb: float
    peak_rss_mb: float
    horizons: Mapping[str, str]  # horizon -> "source, labels on|off, IC x, t y"


def benchmark_settings(settings: Settings, *, database_url: str, window_days: float) -> Settings:
    """``settings`` on 1h candles with the benchmark's database and fit window (horizons, fit rules unchanged)."""
    return settings.model_copy(
        update={
            "database_url": database_url,
            "fit_window_days": window_days,
            "analysis_timeframe": TIMEFRAME,
            "levels_timeframe": TIMEFRAME,
            "timeframes": [TIMEFRAME],
        }
    )


def stored_candles(settings: Settings, *, window_days: float) -> int:
    """How many 1h candles per symbol a refit with this fit window reads (the benchmark stores exactly these)."""
    return analysis_options(benchmark_settings(settings, database_url="", window_days=window_days)).history_candles


def store_universe(database_url: str, universe: Mapping[str, Sequence[Candle]]) -> int:
    """Migrate a fresh database and store every symbol's 1h candles; returns the newest close time (ms)."""
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            repository = CandleRepository(session)
            for symbol, candles in universe.items():
                repository.upsert(exchange=EXCHANGE, symbol=symbol, timeframe=TIMEFRAME, candles=candles)
            session.commit()
    finally:
        engine.dispose()
    return max(candles[-1].open_time_ms for candles in universe.values()) + timeframe_ms(TIMEFRAME)


def timed_refit(settings: Settings, symbols: Sequence[str], now_ms: int) -> tuple[float, float, float, dict[str, str]]:
    """In the child: (wall s, RSS before MiB, peak RSS MiB, horizon summaries) of one ``ModelRefit.run``."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # failures only
    rss_before_mb = _memory_mb("VmRSS")
    engine = make_engine(settings.resolved_database_url)
    try:
        refit = ModelRefit(
            exchange=EXCHANGE, options=analysis_options(settings), session_factory=make_session_factory(engine)
        )
        started = time.perf_counter()
        result = refit.run(symbols=symbols, now_ms=now_ms)
        wall_s = time.perf_counter() - started
    finally:
        engine.dispose()
    if result is None:
        raise RuntimeError("the benchmark refit failed (see the refit_failed event)")
    summary = {
        name: f"{m.weights_source}, labels {'on' if m.labels_active else 'off'}, "
        f"IC {m.walk_forward_ic}, t {m.walk_forward_t}"
        for name, m in result.models.items()
    }
    return wall_s, rss_before_mb, _memory_mb("VmHWM"), summary


def _memory_mb(field: str) -> float:
    """A ``/proc/self/status`` memory figure (``VmRSS``, ``VmHWM``) in MiB; ``ru_maxrss`` where there is none."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_refit_benchmark(
    settings: Settings, universe: Mapping[str, Sequence[Candle]], *, window_days: float
) -> RefitBenchmark:
    """Store ``universe`` (symbol -> 1h candles) in a throwaway SQLite database and time one refit over it."""
    with tempfile.TemporaryDirectory(prefix="dantaro-refit-bench-") as folder:
        url = f"sqlite:///{Path(folder) / 'benchmark.sqlite3'}"
        now_ms = store_universe(url, universe)
        child_settings = benchmark_settings(settings, database_url=url, window_days=window_days)
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            wall_s, before_mb, peak_mb, summary = pool.submit(
                timed_refit, child_settings, list(universe), now_ms
            ).result()
    candles = max(len(c) for c in universe.values())
    return RefitBenchmark(len(universe), candles, window_days, wall_s, before_mb, peak_mb, summary)


def format_refit(result: RefitBenchmark) -> str:
    """The result for the terminal."""
    lines = [
        f"refit benchmark: {result.symbols} symbols x {result.candles} stored 1h candles (real series), "
        f"fit window {result.window_days:g} days: wall {result.wall_s:.2f} s (database read, factor history, fit, "
        f"store), peak RSS {result.peak_rss_mb:.0f} MiB (child process; {result.rss_before_mb:.0f} MiB before the "
        "refit)"
    ]
    lines += [f"  {name}: {text}" for name, text in result.horizons.items()]
    return "\n".join(lines)
