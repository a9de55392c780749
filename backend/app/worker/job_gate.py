"""Scheduled slots and the gate every shared job passes: at most one run per (job, slot) across all workers.

Invariants:
- A slot is the integer naming one scheduled occurrence of a job, the same in every worker process:
  the replay (fixed interval) schedule uses ``floor(now_s / interval_s)``; the candle-close schedule (ccxt) uses
  the close time in ms of the smallest timeframe's candle that the run collects (``now - collect_delay``
  floored to the timeframe); the refit uses ``floor(now_s / refit_interval_wall_s)``. Interval triggers are
  aligned to the Unix epoch so every worker fires at a slot's start, whichever process starts first.
- ``JobGate.run`` takes the job's advisory lock (PostgreSQL; see ``app.storage.leases``), then claims the slot,
  then runs the job and releases the lock, also when the job fails or is cancelled. A held lock or an already
  claimed slot skips the run (``None``); so does a database error while locking or claiming (logged; the next
  slot tries again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.domain import ms_to_datetime, timeframe_ms
from app.storage.leases import JobLock, claim_slot, try_lock

log = structlog.get_logger(__name__)

T = TypeVar("T")


def interval_slot(now_s: float, *, interval_s: float) -> int:
    """The slot of a fixed-interval schedule at ``now_s``: ``floor(now_s / interval_s)``."""
    return int(now_s // interval_s)


def cycle_slot(settings: Settings, now_s: float) -> int:
    """The cycle slot at ``now_s``: an interval number (replay) or the collected candle's close time in ms (ccxt)."""
    if settings.market_source != "ccxt":
        return interval_slot(now_s, interval_s=settings.analysis_interval_s)
    step_ms = min(timeframe_ms(tf) for tf in settings.timeframes)
    since_close_ms = int(now_s * 1000) - int(settings.collect_delay_s * 1000)
    return (since_close_ms // step_ms) * step_ms


def refit_interval_wall_s(settings: Settings) -> float:
    """Wall seconds between refits: ``refit_interval_s`` live; for the replay, the wall time in which its simulated
    clock (one step per ``analysis_interval_s``) advances ``refit_interval_s``, so it refits on the replayed days."""
    if settings.market_source == "ccxt":
        return settings.refit_interval_s
    step_s = min(timeframe_ms(tf) for tf in settings.timeframes) / 1000
    return max(settings.analysis_interval_s, settings.refit_interval_s * settings.analysis_interval_s / step_s)


def aligned_interval(interval_s: float, *, offset_s: float = 0.0) -> IntervalTrigger:
    """Every ``interval_s`` at epoch + ``offset_s`` + k × interval, identical in every process."""
    start = ms_to_datetime(int(offset_s * 1000) % max(1, int(interval_s * 1000)))
    return IntervalTrigger(seconds=interval_s, start_date=start, timezone="UTC")


class JobGate:
    """Runs a job's slot only in the worker that holds its lock and wins its claim."""

    def __init__(self, *, engine: Engine, session_factory: sessionmaker[Session], holder: str) -> None:
        self.engine = engine
        self.session_factory = session_factory
        self.holder = holder

    async def run(self, job: str, *, slot: int | None, work: Callable[[], Awaitable[T]]) -> T | None:
        """Run ``work`` under the job's lock when this worker claims ``slot`` (``None``: lock only); else None."""
        lock = await self._lock(job, slot)
        if lock is None:
            return None
        try:
            if slot is not None and not await self._claim(job, slot):
                return None
            return await work()
        finally:
            await asyncio.shield(asyncio.to_thread(lock.release))

    async def _lock(self, job: str, slot: int | None) -> JobLock | None:
        try:
            lock = await asyncio.to_thread(try_lock, self.engine, job=job)
        except SQLAlchemyError as exc:
            log.warning("job_skipped", job=job, slot=slot, reason="database error", error=str(exc))
            return None
        if lock is None:
            log.info("job_skipped", job=job, slot=slot, reason="another worker is running it")
        return lock

    async def _claim(self, job: str, slot: int) -> bool:
        try:
            claimed = await asyncio.to_thread(self._insert_claim, job, slot)
        except SQLAlchemyError as exc:
            log.warning("job_skipped", job=job, slot=slot, reason="database error", error=str(exc))
            return False
        if not claimed:
            log.info("job_skipped", job=job, slot=slot, reason="slot already run")
        return claimed

    def _insert_claim(self, job: str, slot: int) -> bool:
        with self.session_factory() as session:
            claimed = claim_slot(session, job=job, slot=slot, holder=self.holder)
            session.commit()
        return claimed
