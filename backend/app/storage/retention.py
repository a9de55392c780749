"""Retention: delete old analysis runs, candles, job claims and webhook deliveries in small batches, each its own
transaction.

Invariants:
- Every DELETE removes at most one batch (``batch_rows`` candles or claims; for runs ``batch_rows // 100`` runs,
  because each run cascades to about a hundred rows of recommendations and levels) and commits on its own, so
  no statement holds locks long enough to block the API's reads or the worker's writes.
- Runs: those started before ``runs_before`` are deleted, but never the newest published run of an exchange
  (the API keeps serving it even when the worker has been down longer than the retention).
- Candles: per exchange and timeframe, those whose open time is older than the newest stored candle minus
  ``max(candles to keep × timeframe, candle_retention)``, where the candles to keep are the lookback, or the refit's
  history (``history_candles``) where that is longer; measured from the stored data, not the wall clock, so
  a replay of old history never loses the lookback it analyses.
- Job claims: those claimed before ``claims_before``.
- Webhook deliveries (with their attempts): those of deleted runs go with them (ON DELETE CASCADE); any other
  created before ``runs_before`` (test deliveries, those of runs kept as the newest) are deleted too. The retry
  window (``DANTARO_WEBHOOK_RETRY_WINDOW_S``, a day) is far shorter than the retention, so none is still pending.
Times: ``*_ms`` epoch milliseconds, ``*_before`` aware UTC datetimes. Database errors propagate; whatever was
committed before them stays deleted, and the next run continues.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, delete, func, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from app.domain import timeframe_ms
from app.storage.models import AnalysisRunModel, CandleModel, JobClaimModel, WebhookDeliveryModel
from app.storage.runs import RunRepository

log = structlog.get_logger(__name__)

DEFAULT_BATCH_ROWS = 5_000
ROWS_PER_RUN = 100  # a run cascades to about this many child rows (recommendations + levels of its universe)
ROWS_PER_DELIVERY = 10  # a delivery cascades to its attempts (a few; at most ~30 over the retry window)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What to keep: runs and claims newer than the given times, per timeframe a candle window (ms)."""

    runs_before: datetime
    claims_before: datetime
    candle_keep_ms: dict[str, int]  # timeframe → how far back from the newest stored candle to keep
    batch_rows: int = DEFAULT_BATCH_ROWS


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """How many rows one retention pass deleted."""

    runs: int
    candles: int
    claims: int
    deliveries: int = 0


def candle_keep_ms(
    *,
    timeframes: Sequence[str],
    lookback_candles: int,
    retention_days: float,
    history_candles: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Per timeframe: the longest of the analysis lookback, the refit's history (``history_candles``: timeframe ->
    candles) and the configured candle retention, in ms."""
    retention_ms = int(timedelta(days=retention_days).total_seconds() * 1000)
    history = history_candles or {}
    return {tf: max(max(lookback_candles, history.get(tf, 0)) * timeframe_ms(tf), retention_ms) for tf in timeframes}


def delete_in_batches(
    session_factory: sessionmaker[Session],
    *,
    key: Sequence[InstrumentedAttribute[Any]],
    where: Sequence[ColumnElement[bool]],
    batch_rows: int,
) -> int:
    """Delete rows matching ``where`` by primary ``key``, ``batch_rows`` per statement and transaction."""
    table = key[0].class_
    deleted = 0
    while True:
        chosen = select(*key).where(*where).limit(batch_rows)
        target = key[0].in_(chosen.scalar_subquery()) if len(key) == 1 else tuple_(*key).in_(chosen)
        with session_factory() as session:
            count = int(session.execute(delete(table).where(target)).rowcount)  # type: ignore[attr-defined]
            session.commit()
        deleted += count
        if count < batch_rows:
            return deleted


def prune_runs(session_factory: sessionmaker[Session], *, started_before: datetime, batch_rows: int) -> int:
    """Delete runs started before ``started_before`` except each exchange's newest published run."""
    with session_factory() as session:
        exchanges = list(session.execute(select(AnalysisRunModel.exchange).distinct()).scalars())
    deleted = 0
    for exchange in exchanges:
        with session_factory() as session:
            kept = RunRepository(session).latest_run_id(exchange=exchange)
        conditions = [AnalysisRunModel.exchange == exchange, AnalysisRunModel.started_at < started_before]
        if kept is not None:
            conditions.append(AnalysisRunModel.run_id != kept)
        deleted += delete_in_batches(
            session_factory,
            key=[AnalysisRunModel.run_id],
            where=conditions,
            batch_rows=max(1, batch_rows // ROWS_PER_RUN),
        )
    return deleted


def prune_candles(session_factory: sessionmaker[Session], *, keep_ms: dict[str, int], batch_rows: int) -> int:
    """Per exchange and timeframe, delete candles older than the newest stored one minus ``keep_ms[timeframe]``."""
    with session_factory() as session:
        newest = session.execute(
            select(CandleModel.exchange, CandleModel.timeframe, func.max(CandleModel.open_time_ms))
            .where(CandleModel.timeframe.in_(list(keep_ms)))
            .group_by(CandleModel.exchange, CandleModel.timeframe)
        ).all()
    deleted = 0
    for exchange, timeframe, newest_open_ms in newest:
        cutoff_ms = int(newest_open_ms) + timeframe_ms(timeframe) - keep_ms[timeframe]
        deleted += delete_in_batches(
            session_factory,
            key=[CandleModel.exchange, CandleModel.symbol, CandleModel.timeframe, CandleModel.open_time_ms],
            where=[
                CandleModel.exchange == exchange,
                CandleModel.timeframe == timeframe,
                CandleModel.open_time_ms < cutoff_ms,
            ],
            batch_rows=batch_rows,
        )
    return deleted


def prune_claims(session_factory: sessionmaker[Session], *, claimed_before: datetime, batch_rows: int) -> int:
    """Delete job claims made before ``claimed_before``."""
    return delete_in_batches(
        session_factory,
        key=[JobClaimModel.job, JobClaimModel.slot],
        where=[JobClaimModel.claimed_at < claimed_before],
        batch_rows=batch_rows,
    )


def prune_deliveries(session_factory: sessionmaker[Session], *, created_before: datetime, batch_rows: int) -> int:
    """Delete webhook deliveries (and their attempts) created before ``created_before``."""
    return delete_in_batches(
        session_factory,
        key=[WebhookDeliveryModel.delivery_id],
        where=[WebhookDeliveryModel.created_at < created_before],
        batch_rows=max(1, batch_rows // ROWS_PER_DELIVERY),
    )


def apply_retention(session_factory: sessionmaker[Session], policy: RetentionPolicy) -> RetentionResult:
    """One retention pass: runs, then candles, claims and webhook deliveries (each in its own batches)."""
    steps: list[tuple[str, Callable[[], int]]] = [
        ("runs", lambda: prune_runs(session_factory, started_before=policy.runs_before, batch_rows=policy.batch_rows)),
        (
            "candles",
            lambda: prune_candles(session_factory, keep_ms=policy.candle_keep_ms, batch_rows=policy.batch_rows),
        ),
        (
            "claims",
            lambda: prune_claims(session_factory, claimed_before=policy.claims_before, batch_rows=policy.batch_rows),
        ),
        (
            "webhook_deliveries",
            lambda: prune_deliveries(session_factory, created_before=policy.runs_before, batch_rows=policy.batch_rows),
        ),
    ]
    counts: dict[str, int] = {}
    for name, step in steps:
        counts[name] = step()
        log.info("retention_pruned", table=name, deleted=counts[name])
    return RetentionResult(
        runs=counts["runs"],
        candles=counts["candles"],
        claims=counts["claims"],
        deliveries=counts["webhook_deliveries"],
    )
