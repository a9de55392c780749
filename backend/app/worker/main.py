"""Worker process wiring: build engines, caches and market sources from ``Settings``, run, and close them.

``python backend/analysis_worker.py`` and ``dantaro worker`` both end here. Exit status of ``--once``: 0 when
every exchange's cycle published (succeeded or partial), 1 otherwise (also when another worker was running the
exchange's cycle). On the replay source the worker first checks the replay folder (``app.candle_data``, the rules of
``dantaro check-data``) and logs every problem as one ``replay_data_problems`` warning; the damaged files' symbols
are then left out of every run with their reason. The scheduled worker serves Prometheus metrics on
``DANTARO_WORKER_METRICS_PORT`` (0 = off).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import structlog
from sqlalchemy import Engine

from app.candle_data import check_folder
from app.config import Settings
from app.domain import RunStatus, timeframe_ms
from app.exchange import MarketSource, build_source
from app.storage.cache import MemoryCache, RedisCache, SnapshotCache
from app.storage.db import make_engine, make_session_factory
from app.storage.migrate import require_head
from app.storage.redis_py import RedisPyClient
from app.storage.repositories import CandleRepository
from app.worker.cycle import ExchangeCycle
from app.worker.metrics import start_metrics_server
from app.worker.service import Worker

log = structlog.get_logger(__name__)


def step_timeframe(settings: Settings) -> str:
    """The smallest configured timeframe: the replay clock's step and the collection rhythm."""
    return min(settings.timeframes, key=timeframe_ms)


def _resume_point_ms(engine: Engine, settings: Settings, exchange: str) -> int | None:
    """Close time of the newest stored candle of the step timeframe, so a restarted replay resumes there."""
    step = step_timeframe(settings)
    session_factory = make_session_factory(engine)
    with session_factory() as session:
        latest = CandleRepository(session).latest_open_time_ms(exchange=exchange, timeframe=step)
    return None if latest is None else latest + timeframe_ms(step)


def build_cache(settings: Settings, *, shared: MemoryCache | None = None) -> SnapshotCache | None:
    """Redis when configured, else the ``shared`` in-process cache (``dantaro run``), else none."""
    if settings.redis_url:
        client = RedisPyClient.from_url(settings.redis_url, timeout_s=settings.redis_timeout_s)
        return RedisCache(client, prefix=settings.redis_prefix, ttl_s=settings.snapshot_ttl_s)
    return shared


def log_replay_data_problems(settings: Settings) -> int:
    """Check the replay folder as ``dantaro check-data`` does and log every problem (one warning); returns how many."""
    problems, files = check_folder(settings.replay_data_dir, timeframes=settings.timeframes)
    if problems:
        log.warning(
            "replay_data_problems",
            data_dir=str(settings.replay_data_dir),
            files=files,
            count=len(problems),
            problems=[problem.line() for problem in problems],
        )
    return len(problems)


@contextlib.asynccontextmanager
async def open_worker(settings: Settings, *, shared_cache: MemoryCache | None = None) -> AsyncIterator[Worker]:
    """A ready ``Worker``; its sources and engine are closed on exit."""
    await asyncio.to_thread(require_head, settings.resolved_database_url)
    if settings.market_source == "replay":
        await asyncio.to_thread(log_replay_data_problems, settings)
    engine = make_engine(settings.resolved_database_url)
    sources: list[MarketSource] = []
    try:
        session_factory = make_session_factory(engine)
        cache = build_cache(settings, shared=shared_cache)
        for exchange in settings.exchanges:
            resume_ms = await asyncio.to_thread(_resume_point_ms, engine, settings, exchange)
            sources.append(build_source(settings, exchange, resume_from_ms=resume_ms))
        cycles = [
            ExchangeCycle(source=source, settings=settings, session_factory=session_factory, cache=cache)
            for source in sources
        ]
        yield Worker(settings=settings, engine=engine, session_factory=session_factory, cycles=cycles)
    finally:
        for source in sources:
            await source.close()
        engine.dispose()


async def run_worker(settings: Settings, *, once: bool) -> int:
    """Run the worker until SIGTERM/SIGINT (or one cycle per exchange with ``once``); returns the exit status."""
    async with open_worker(settings) as worker:
        await worker.beat(state="starting")
        if once:
            outcomes = await worker.run_all_once()
            await worker.beat(state="stopped")
            published = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)
            return 0 if outcomes and all(o is not None and o.status in published for o in outcomes) else 1
        start_metrics_server(settings)
        stop = asyncio.Event()
        _install_signal_handlers(stop)
        await worker.serve(stop)
    return 0


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, stop, signum)


def _on_signal(stop: asyncio.Event, signum: int) -> None:
    log.info("worker_signal", signal=signal.Signals(signum).name)
    stop.set()
