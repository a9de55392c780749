"""The FastAPI app factory: ``create_app(settings)`` builds the routes and middleware; the lifespan builds the
engine, the optional Redis client, the ``SnapshotReader``, the rate limiter and the background tasks at startup and
stops or disposes what it built at shutdown.

Invariants:
- ``DANTARO_ENV=production`` with development defaults (the development key, a CHANGE_ME password) refuses to
  build (``ConfigurationError``); OpenAPI docs are off in production unless ``DANTARO_DOCS_ENABLED=true``; CORS allows
  only ``DANTARO_CORS_ORIGINS``; bodies >= 1 KB are gzipped on request.
- Background work of the lifespan: a Redis pub/sub listener that drops superseded in-process copies and wakes the
  live stream's ``RunHub`` (new runs reach this process within a second), the hub itself, and the batched
  ``last_used_at`` flush (every ``api_keys_flush_interval_s`` and once more at shutdown).
- Middleware, outermost first: request observability (request id, log, metrics), CORS, the catch-all 500, the
  request edge (``edge.py``: body limit, key checked before a body is read), gzip. Trailing-slash redirects are off
  (a redirect's URL would come from the ``Host`` header): such a path is a 404.
- ``begin_shutdown(app)`` ends every open live stream: the server calls it before waiting for open responses
  (``app.server``); the lifespan's shutdown does it too.
- Resources passed in via ``ApiState`` (``dantaro run`` shares its in-process cache with the worker; tests pass
  a ``Database`` on their own engine) are used as-is and left for their owner to dispose.
- An exception that escapes a route becomes a logged, generic 500 inside the middleware stack
  (``UnhandledErrorMiddleware``), so the 500 still carries ``X-Request-ID``, is counted and logged once, and never
  reaches the server (a Starlette ``Exception`` handler would answer outside the stack and re-raise).
- With ``DANTARO_API_HOT_PATH`` (default) each request meets ``app.api.hot_path.HotPath`` first (the app's front):
  a data GET it can answer from memory never enters FastAPI; everything else does, unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import structlog
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Receive, Scope, Send

from app.answer_now import AnswerNow
from app.api.auth import KeyVerifier, UsageRecorder, database_key_lookup
from app.api.candle_store import CandleStore
from app.api.deps import ApiRuntime
from app.api.edge import RequestEdge
from app.api.errors import install_error_handlers
from app.api.footprint import limit_malloc_arenas, limit_threads, trim_heap
from app.api.hot_path import HotPath
from app.api.key_throttle import FAILED_KEYS_NAMESPACE, FailedKeyThrottle
from app.api.metrics import ApiMetrics
from app.api.middleware import GzipWhenAccepted, add_cors
from app.api.observability import RequestObservability
from app.api.ratelimit import Limiter, RateLimiter, RedisRateLimiter
from app.api.responses import OrjsonResponse
from app.api.route_table import add_routes_flat, declare_bearer_auth, declare_schemas
from app.api.routes import (
    bundle,
    candles,
    catalog,
    dashboard,
    health,
    levels,
    market,
    pairlist,
    recommendations,
    stream,
    track_record,
)
from app.api.run_stream import RunHub
from app.api.stream_slots import LocalStreamSlots, RedisStreamSlots, StreamSlots
from app.api.track_store import SharedTier, TrackRecordStore
from app.config import Settings, get_settings
from app.domain import utc_now
from app.storage.cache import MemoryCache, RedisCache, RunNotificationListener, SnapshotCache
from app.storage.reader import SnapshotReader
from app.storage.redis_client import RedisClient
from app.storage.sql import Database
from app.storage.sql_drivers import POOL_MAX, open_database

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"
MALLOC_ARENAS = 2  # glibc heap arenas of the API process (app.api.footprint)


class ConfigurationError(RuntimeError):
    """The settings are not safe to serve with."""


@dataclass(frozen=True, slots=True)
class ApiState:
    """Resources shared with the rest of the process; ``None`` fields are built (and disposed) by the lifespan."""

    cache: SnapshotCache | None = None
    database: Database | None = None  # the database reads go to (default: a pool of its own for the settings)
    extra_metrics: CollectorRegistry | None = None  # also exposed on /metrics (the in-process worker's)
    keys: KeyVerifier | None = None  # the verified-key table (tests pass one with their own clock)
    limiter: Limiter | None = None  # the per-key budgets, used as given (default: in-process, shared through Redis)
    clock: Callable[[], datetime] = utc_now  # the wall clock of freshness fields and max-age (tests freeze it)
    metrics_dir: Path | None = None  # one of several processes: /metrics sums every process's series spooled here


def api_version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("dantaro-central")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def check_settings(settings: Settings) -> None:
    """Raise ``ConfigurationError`` when ``settings`` must not serve (production with development defaults)."""
    problems = settings.production_problems()
    if problems:
        raise ConfigurationError("DANTARO_ENV=production refuses to start: " + "; ".join(problems))


class DantaroApi(FastAPI):
    """FastAPI with a front: the plain ASGI layer each request meets before FastAPI's own stack (the hot path,
    ``app.api.hot_path``); by default the front is FastAPI itself (``behind_front``)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.front: ASGIApp = self.behind_front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the request to the front."""
        await self.front(scope, receive, send)

    async def behind_front(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI itself: its middleware, routing and routes."""
        await super().__call__(scope, receive, send)

    def answer_at_once(self) -> AnswerNow | None:
        """What the server's protocol may answer without an ASGI task: the hot path's ``answer_now``, if it is on."""
        return self.front.answer_now if isinstance(self.front, HotPath) else None


def create_app(settings: Settings | None = None, *, state: ApiState | None = None) -> DantaroApi:
    """A FastAPI app serving the published snapshots (``settings`` default to ``get_settings()``, read now)."""
    settings = settings or get_settings()
    check_settings(settings)
    docs = settings.docs_active()
    metrics = ApiMetrics()
    app = DantaroApi(
        title="Dantaro Central",
        version=api_version(),
        description="Read-only market analysis: recommendations, support levels, market status and the track record.",
        default_response_class=OrjsonResponse,
        lifespan=_lifespan(settings, state or ApiState(), metrics),
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        redirect_slashes=False,  # a redirect would be built from the Host header: a trailing slash is a 404
    )
    add_routes_flat(app, health.router, prefix="")
    add_routes_flat(app, dashboard.router, prefix="")  # static pages: the key is entered in the browser
    for module in (recommendations, levels, market, catalog, bundle, track_record, candles, pairlist, stream):
        add_routes_flat(app, module.router, prefix=API_PREFIX, authenticated=True)
    declare_bearer_auth(app, prefix=API_PREFIX)
    declare_schemas(app, stream.EVENT_MODELS)
    app.add_middleware(GzipWhenAccepted)
    app.add_middleware(
        RequestEdge,
        max_body_bytes=settings.api_max_body_bytes,
        protected_prefix=API_PREFIX,
        runtime=lambda: cast(ApiRuntime, app.state.runtime),
    )
    install_error_handlers(app)  # its catch-all 500 wraps the edge: a failure there is answered in our shape too
    add_cors(app, settings.cors_origins)  # outside the edge: its refusals carry the CORS headers
    app.add_middleware(RequestObservability, metrics=metrics)  # sees every request FastAPI answers, and its status
    if settings.api_hot_path:  # before FastAPI's stack: answers data GETs from memory, passes everything else on
        app.front = HotPath(app.front, api=app, prefix=API_PREFIX)
    return app


def _lifespan(
    settings: Settings, state: ApiState, metrics: ApiMetrics
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_malloc_arenas(MALLOC_ARENAS)
        limit_threads(settings.api_threads)
        async with AsyncExitStack() as owned:
            app.state.runtime = _build_runtime(settings, state, owned, metrics)
            await owned.enter_async_context(metrics.spooled(state.metrics_dir))
            await _start_background(app.state.runtime, owned)
            _start_hub(app.state.runtime, owned)
            log.info("api_started", exchanges=settings.exchanges, version=app.state.runtime.version)
            gc.freeze()  # startup objects (modules, routes, settings) leave the collector's working set: shorter pauses
            trim_heap()
            try:
                yield
            finally:
                log.info("api_stopping")

    return lifespan


def _build_runtime(settings: Settings, state: ApiState, owned: AsyncExitStack, metrics: ApiMetrics) -> ApiRuntime:
    database = state.database
    if database is None:
        database = open_database(settings.resolved_database_url, max_connections=max(POOL_MAX, settings.api_threads))
        owned.callback(database.dispose)
    cache = state.cache
    if cache is None and settings.redis_url:
        cache = _own_redis_cache(settings, owned)
    reader = SnapshotReader(database=database, cache=cache, cache_retry_after_s=settings.redis_retry_after_s)
    redis = _redis_of(cache)
    if redis is not None:
        metrics.enable_redis_gauge()
    limiter = state.limiter or _counter(settings, redis, reader, owned, namespace="ratelimit")
    failed_keys = _counter(settings, redis, reader, owned, namespace=FAILED_KEYS_NAMESPACE)
    hub = RunHub(database=database, exchanges=settings.exchanges, poll_interval_s=settings.stream_poll_interval_s)
    _wire_notifications(cache, redis, [reader.on_published, hub.notify], owned)
    keys = state.keys or KeyVerifier(lookup=database_key_lookup(database), dev_key_active=settings.dev_key_active())
    return ApiRuntime(
        settings=settings,
        reader=reader,
        keys=keys,
        version=api_version(),
        started_at_s=time.monotonic(),
        limiter=limiter,
        key_throttle=FailedKeyThrottle(failed_keys, limit_per_min=settings.api_failed_keys_per_min),
        usage=UsageRecorder(database),
        metrics=metrics,
        database=database,
        redis_client=redis,
        extra_metrics=state.extra_metrics,
        track_record=TrackRecordStore(database=database, shared=_shared_tier(settings, redis, reader)),
        clock=state.clock,
        candles=CandleStore(database=database, shared=_shared_tier(settings, redis, reader)),
        runs=hub,
        stream_slots=_stream_slots(settings, redis, reader),
    )


def _redis_of(cache: SnapshotCache | None) -> RedisClient | None:
    """The Redis client the API shares between its tiers, limiters and listener (None without Redis)."""
    if not isinstance(cache, RedisCache):
        return None
    if not isinstance(cache.client, RedisClient):
        raise TypeError("the API's RedisCache must use app.storage.redis_client.RedisClient")
    return cache.client


def _counter(
    settings: Settings, redis: RedisClient | None, reader: SnapshotReader, owned: AsyncExitStack, *, namespace: str
) -> Limiter:
    """Per-minute counts under ``namespace``: shared through Redis (with the reader's breaker) when the snapshots
    use it, counted in this process otherwise (and while Redis is skipped)."""
    local = RateLimiter()
    if redis is None:
        return local
    shared = RedisRateLimiter(redis, prefix=settings.redis_prefix, namespace=namespace, fallback=local, breaker=reader)
    shared.start()
    owned.callback(shared.stop)
    return shared


def _stream_slots(settings: Settings, redis: RedisClient | None, reader: SnapshotReader) -> StreamSlots:
    """Open streams per key: Redis leases shared by every process (sharing the reader's breaker), else local."""
    local = LocalStreamSlots()
    if redis is None:
        return local
    lease_s = 3 * settings.stream_heartbeat_s
    return RedisStreamSlots(redis, prefix=settings.redis_prefix, lease_s=lease_s, breaker=reader, fallback=local)


def begin_shutdown(app: FastAPI) -> None:
    """End every open live stream and refuse new ones (before the server waits for open responses)."""
    runtime = getattr(app.state, "runtime", None)
    if isinstance(runtime, ApiRuntime) and runtime.runs is not None:
        runtime.runs.close()


def _shared_tier(settings: Settings, redis: RedisClient | None, reader: SnapshotReader) -> SharedTier | None:
    """Redis for the bodies the routes build (sharing the reader's breaker) when the snapshots use it."""
    if redis is None:
        return None
    return SharedTier(redis, prefix=settings.redis_prefix, ttl_s=settings.snapshot_ttl_s, breaker=reader)


def _own_redis_cache(settings: Settings, owned: AsyncExitStack) -> RedisCache:
    assert settings.redis_url is not None
    # No retry: a failing Redis costs one timeout, then the reader and the limiter skip it for a while.
    client = RedisClient.from_url(settings.redis_url, timeout_s=settings.redis_timeout_s, retries=0)
    owned.callback(client.close)
    return RedisCache(client, prefix=settings.redis_prefix, ttl_s=settings.snapshot_ttl_s)


def _wire_notifications(
    cache: SnapshotCache | None,
    redis: RedisClient | None,
    listeners: list[Callable[[str, str], None]],
    owned: AsyncExitStack,
) -> None:
    """Call ``listeners`` for every published run: the in-process cache's callback, or Redis's run channel."""

    def announce(exchange: str, run_id: str) -> None:
        for listener in listeners:
            listener(exchange, run_id)

    if isinstance(cache, MemoryCache):
        cache.subscribe(announce)
    elif isinstance(cache, RedisCache) and redis is not None:  # redis is the cache's client (_redis_of)
        subscriber = RunNotificationListener(redis, channel=cache.channel, listener=announce)
        subscriber.start()
        owned.callback(subscriber.stop)


def _start_hub(runtime: ApiRuntime, owned: AsyncExitStack) -> None:
    hub = runtime.runs
    if hub is not None:
        hub.start()
        owned.push_async_callback(hub.stop)


async def _start_background(runtime: ApiRuntime, owned: AsyncExitStack) -> None:
    usage = runtime.usage
    if usage is None:
        return
    task = asyncio.create_task(_flush_usage_forever(usage, interval_s=runtime.settings.api_keys_flush_interval_s))

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await _flush_usage(usage)

    owned.push_async_callback(stop)


async def _flush_usage(usage: UsageRecorder) -> None:
    try:
        written = await run_in_threadpool(usage.flush)
    except Exception as exc:  # a failing database must not stop the API; uses are retried on the next flush
        log.warning("api_key_usage_flush_failed", error_type=type(exc).__name__, error=str(exc))
        return
    if written:
        log.debug("api_key_usage_flushed", keys=written)


async def _flush_usage_forever(usage: UsageRecorder, *, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        await _flush_usage(usage)
