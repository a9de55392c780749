"""The analysis worker: one ``ExchangeCycle`` per exchange, retention, a heartbeat, and a clean stop.

Invariants:
- Every job and trigger is listed in ``install_jobs``; nothing else schedules work:
  ``cycle:<exchange>`` — at start, then (ccxt) ``collect_delay_s`` after every close of the smallest timeframe,
  so served data is at most one candle plus that delay old, or (replay, simulated clock) every
  ``analysis_interval_s`` (epoch-aligned); ``retention`` — every ``retention_interval_s`` (epoch-aligned);
  ``universe:<exchange>`` — every ``universe_refresh_interval_s`` (the first selection happens in the first
  cycle; each process keeps its own); ``refit:<exchange>`` — every ``refit_interval_wall_s`` (epoch-aligned:
  ``DANTARO_REFIT_INTERVAL_S`` live, the same span of replayed time for the replay), plus the start refit inside the
  first cycle of each exchange in this process (after its collection, before its analysis; it fits only when a
  served horizon has no usable stored model or the stored fit is a refit interval old); ``heartbeat`` — at start,
  then every ``heartbeat_interval_s``; ``score:<exchange>`` — every ``analysis_interval_s``, half an interval after
  the replay's cycles (epoch-aligned): scores the published runs whose horizons have elapsed in the stored candles
  (``app.worker.track_record``), oldest first, for at most half an interval per pass, then sets the IC gauge;
  ``webhooks`` — every ``webhook_poll_interval_s``: sends the due deliveries of the outbox
  (``app.webhooks.dispatcher``; claimed with a lease, so it needs no ``JobGate``: several workers share the work).
- Any number of worker processes may run: cycles, refits, scoring and retention pass ``JobGate``
  (``app/worker/job_gate.py``), so each (job, slot) runs once across all of them and two runs of one job never
  overlap (PostgreSQL advisory lock); when the holder dies another worker runs the next slot. On SQLite run one
  worker process.
- One cycle per exchange runs at a time in a process (``max_instances=1``; missed runs coalesce into one).
- On stop, in-flight cycles get ``shutdown_grace_s`` to finish; a cycle still running after that is cancelled,
  which rolls it back (its run is recorded ``failed``, nothing is published).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.domain import ms_to_datetime, timeframe_ms, utc_now
from app.storage.repositories import HeartbeatRepository
from app.storage.retention import RetentionPolicy, RetentionResult, apply_retention, candle_keep_ms
from app.webhooks.dispatcher import DispatchPass, WebhookDispatcher
from app.worker.analysis_options import analysis_options
from app.worker.cycle import CycleOutcome, ExchangeCycle
from app.worker.job_gate import JobGate, aligned_interval, cycle_slot, interval_slot, refit_interval_wall_s
from app.worker.metrics import record_outcome, record_scoring, record_webhooks
from app.worker.refit import RefitResult
from app.worker.track_record import RunScorer, ScoringPass

log = structlog.get_logger(__name__)

T = TypeVar("T")


def cycle_trigger(settings: Settings) -> BaseTrigger:
    """When cycles run: ``collect_delay_s`` after each candle close (ccxt), or a fixed interval (replay)."""
    if settings.market_source != "ccxt":
        return aligned_interval(settings.analysis_interval_s)
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
        engine: Engine,
        session_factory: sessionmaker[Session],
        cycles: Sequence[ExchangeCycle],
        shutdown_grace_s: float = 30.0,
        dispatcher: WebhookDispatcher | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.cycles = {cycle.exchange: cycle for cycle in cycles}
        self.shutdown_grace_s = shutdown_grace_s
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.gate = JobGate(engine=engine, session_factory=session_factory, holder=self.worker_id)
        self.started_at: datetime = utc_now()
        self.current_run_id: str | None = None
        self.options = analysis_options(settings)
        self._inflight: set[asyncio.Task[object]] = set()
        self._start_refits: set[str] = set()  # exchanges whose start refit ran in this process
        self.dispatcher = dispatcher or WebhookDispatcher(session_factory=session_factory, settings=settings)
        self.scorers = {
            exchange: RunScorer(exchange=exchange, options=self.options, session_factory=session_factory)
            for exchange in self.cycles
        }

    async def run_cycle(self, exchange: str, *, claim: bool = True) -> CycleOutcome | None:
        """One cycle for ``exchange`` if this worker wins its slot (``claim=False``: lock only); None when skipped."""
        slot = cycle_slot(self.settings, time.time()) if claim else None
        return await self._tracked(self.gate.run(f"cycle:{exchange}", slot=slot, work=lambda: self._cycle(exchange)))

    async def _cycle(self, exchange: str) -> CycleOutcome:
        start_refit = None if exchange in self._start_refits else partial(self._start_refit, exchange)
        outcome = await self.cycles[exchange].run_once(before_analysis=start_refit)
        record_outcome(outcome)
        return outcome

    async def _start_refit(self, exchange: str, now_ms: int) -> RefitResult | None:
        """The start refit, inside the first cycle: fit at the cycle's now when due, under the job's lock only."""
        self._start_refits.add(exchange)
        cycle = self.cycles[exchange]
        work = partial(cycle.refit_models, now_ms=now_ms, only_if_due=True)
        return await self.gate.run(f"refit:{exchange}", slot=None, work=work)

    async def run_refit(self, exchange: str, *, claim: bool = True) -> RefitResult | None:
        """Refit the exchange's models if this worker wins the refit slot (the scheduled job); None when skipped."""
        slot = interval_slot(time.time(), interval_s=refit_interval_wall_s(self.settings)) if claim else None
        work = self.cycles[exchange].refit_models
        return await self._tracked(self.gate.run(f"refit:{exchange}", slot=slot, work=work))

    async def run_scoring(self, exchange: str, *, claim: bool = True) -> ScoringPass | None:
        """Score the exchange's runs whose horizons have elapsed if this worker wins the slot; None when skipped."""
        slot = interval_slot(time.time(), interval_s=self.settings.analysis_interval_s) if claim else None
        work = partial(self._score, exchange)
        return await self._tracked(self.gate.run(f"score:{exchange}", slot=slot, work=work))

    async def _score(self, exchange: str) -> ScoringPass:
        started = time.monotonic()
        budget_s = self.settings.analysis_interval_s / 2
        result = await asyncio.to_thread(self.scorers[exchange].score_pending, budget_s=budget_s)
        record_scoring(exchange, result)
        if result.runs or result.not_ready:
            log.info(
                "scoring_finished",
                exchange=exchange,
                runs=result.runs,
                scores=result.scores,
                not_ready=result.not_ready,
                duration_s=round(time.monotonic() - started, 3),
            )
        return result

    async def run_webhooks(self) -> DispatchPass:
        """Send the outbox's due deliveries (one pass; each delivery is claimed, so workers never send it twice)."""
        try:
            result = await self._tracked(self.dispatcher.run_pass())
        except SQLAlchemyError as exc:  # the database is away: the deliveries stay due for the next pass
            log.warning("webhooks_pass_failed", error=str(exc).splitlines()[0])
            return DispatchPass()
        record_webhooks(result)
        return result

    async def run_all_once(self) -> list[CycleOutcome | None]:
        """One cycle for every exchange, one after another, without slot claims (``--once``); None = skipped."""
        return [await self.run_cycle(exchange, claim=False) for exchange in self.cycles]

    async def run_retention(self, *, claim: bool = True) -> RetentionResult | None:
        """Prune old runs, candles and claims if this worker wins the retention slot; None when skipped."""
        slot = interval_slot(time.time(), interval_s=self.settings.retention_interval_s) if claim else None
        return await self._tracked(self.gate.run("retention", slot=slot, work=self._retention_pass))

    async def _retention_pass(self) -> RetentionResult:
        return await asyncio.to_thread(apply_retention, self.session_factory, self.retention_policy())

    def retention_policy(self) -> RetentionPolicy:
        """What the settings keep, measured from now."""
        now = utc_now()
        return RetentionPolicy(
            runs_before=now - timedelta(days=self.settings.retention_days),
            claims_before=now - timedelta(days=self.settings.retention_days),
            candle_keep_ms=candle_keep_ms(
                timeframes=self.settings.timeframes,
                lookback_candles=self.settings.lookback_candles,
                retention_days=self.settings.candle_retention_days,
                history_candles={self.options.analysis_timeframe: self.options.history_candles},
            ),
        )

    async def _tracked(self, work: Awaitable[T]) -> T:
        """Await ``work`` with this task registered, so that a stop can wait for it."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            return await work
        finally:
            if task is not None:
                self._inflight.discard(task)

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
        """Every job with its trigger: per exchange a cycle, a refit, a universe refresh and the scoring; retention;
        webhook deliveries; heartbeat."""
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
                self.run_scoring,
                aligned_interval(self.settings.analysis_interval_s, offset_s=self.settings.analysis_interval_s / 2),
                args=[exchange],
                id=f"score:{exchange}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
            scheduler.add_job(
                self.run_refit,
                aligned_interval(refit_interval_wall_s(self.settings)),
                args=[exchange],
                id=f"refit:{exchange}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        scheduler.add_job(
            self.run_retention,
            aligned_interval(self.settings.retention_interval_s),
            id="retention",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.add_job(
            self.run_webhooks,
            IntervalTrigger(seconds=self.settings.webhook_poll_interval_s),
            id="webhooks",
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
