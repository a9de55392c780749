"""The analysis worker: one ``ExchangeCycle`` per exchange, a heartbeat, and a clean stop.

Invariants:
- Every job and trigger is listed in ``install_jobs``; nothing else schedules work:
  ``cycle:<exchange>`` — at start, then (ccxt) ``collect_delay_s`` after every close of the smallest timeframe,
  so served data is at most one candle plus that delay old, or (replay, simulated clock) every
  ``analysis_interval_s``; ``universe:<exchange>`` — every ``universe_refresh_interval_s`` (the first selection
  happens in the first cycle); ``heartbeat`` — at start, then every ``heartbeat_interval_s``.
- One cycle per exchange runs at a time (``max_instances=1``; missed runs coalesce into one).
- On stop, in-flight cycles get ``shutdown_grace_s`` to finish; a cycle still running after that is cancelled,
  which rolls it back (its run is recorded ``failed``, nothing is published).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from datetime import datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.domain import ms_to_datetime, timeframe_ms, utc_now
from app.storage.repositories import HeartbeatRepository
from app.worker.cycle import CycleOutcome, ExchangeCycle

log = structlog.get_logger(__name__)


def cycle_trigger(settings: Settings) -> BaseTrigger:
    """When cycles run: ``collect_delay_s`` after each candle close (ccxt), or a fixed interval (replay)."""
    if settings.market_source != "ccxt":
        return IntervalTrigger(seconds=settings.analysis_interval_s)
    step_ms = min(timeframe_ms(tf) for tf in settings.timeframes)
    # Fires at epoch + delay + k × step: every close of the smallest (epoch-aligned) timeframe, plus the delay.
    start = ms_to_datetime(int(settings.collect_delay_s * 1000) % step_ms)
    return IntervalTrigger(seconds=step_ms / 1000, start_date=start, timezone="UTC")


class Worker:
    """Owns the cycles of every configured exchange and the worker's heartbeat row."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: sessionmaker[Session],
        cycles: Sequence[ExchangeCycle],
        shutdown_grace_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.cycles = {cycle.exchange: cycle for cycle in cycles}
        self.shutdown_grace_s = shutdown_grace_s
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.started_at: datetime = utc_now()
        self.current_run_id: str | None = None
        self._inflight: set[asyncio.Task[CycleOutcome]] = set()

    async def run_cycle(self, exchange: str) -> CycleOutcome:
        """Run one cycle for ``exchange``, tracked so that a stop can wait for it."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            return await self.cycles[exchange].run_once()
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def run_all_once(self) -> list[CycleOutcome]:
        """One cycle for every exchange, one after another."""
        return [await self.run_cycle(exchange) for exchange in self.cycles]

    async def beat(self, *, state: str = "running") -> None:
        """Write this worker's heartbeat row."""
        await asyncio.to_thread(self._write_beat, state)

    def _write_beat(self, state: str) -> None:
        with self.session_factory() as session:
            HeartbeatRepository(session).beat(
                worker_id=self.worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                started_at=self.started_at,
                state=state,
                current_run_id=self.current_run_id,
            )
            session.commit()

    def install_jobs(self, scheduler: AsyncIOScheduler) -> None:
        """Every job this worker runs, with its trigger: per exchange a cycle and a universe refresh; the heartbeat."""
        now = utc_now()
        for exchange, cycle in self.cycles.items():
            scheduler.add_job(
                cycle.refresh_universe,
                IntervalTrigger(seconds=self.settings.universe_refresh_interval_s),
                id=f"universe:{exchange}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
            scheduler.add_job(
                self.run_cycle,
                cycle_trigger(self.settings),
                args=[exchange],
                id=f"cycle:{exchange}",
                next_run_time=now,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        scheduler.add_job(
            self.beat,
            IntervalTrigger(seconds=self.settings.heartbeat_interval_s),
            id="heartbeat",
            next_run_time=now,
            max_instances=1,
            coalesce=True,
        )

    async def serve(self, stop: asyncio.Event) -> None:
        """Run the schedule until ``stop`` is set, then stop cleanly."""
        scheduler = AsyncIOScheduler(timezone="UTC")
        self.install_jobs(scheduler)
        scheduler.start()
        log.info("worker_started", worker_id=self.worker_id, exchanges=list(self.cycles))
        try:
            await stop.wait()
        finally:
            scheduler.pause()
            await self._drain()
            scheduler.shutdown(wait=False)
            await self.beat(state="stopped")
            log.info("worker_stopped", worker_id=self.worker_id)

    async def _drain(self) -> None:
        inflight = set(self._inflight)
        if not inflight:
            return
        log.info("worker_draining", cycles=len(inflight), grace_s=self.shutdown_grace_s)
        _done, pending = await asyncio.wait(inflight, timeout=self.shutdown_grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
