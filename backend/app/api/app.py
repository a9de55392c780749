"""The FastAPI app factory. ``create_app()`` builds nothing: the lifespan builds the engine, the optional Redis
client and the ``SnapshotReader`` at startup and disposes what it built at shutdown.

Resources passed in via ``ApiState`` (``dantaro run`` shares its in-process cache and session factory with the
worker) are used as-is and left for their owner to dispose. Settings are read in the lifespan, not at import.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager
from dataclasses import dataclass
from importlib import metadata

import structlog
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy.orm import Session, sessionmaker

from app.api.auth import KeyVerifier, database_key_lookup
from app.api.deps import ApiRuntime, require_api_key
from app.api.errors import install_error_handlers
from app.api.responses import OrjsonResponse
from app.api.routes import health, levels, market, recommendations
from app.config import Settings, get_settings
from app.storage.cache import RedisCache, SnapshotCache, make_redis
from app.storage.db import make_engine, make_session_factory
from app.storage.reader import SnapshotReader

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"


@dataclass(frozen=True, slots=True)
class ApiState:
    """Resources shared with the rest of the process; ``None`` fields are built (and disposed) by the lifespan."""

    cache: SnapshotCache | None = None
    session_factory: sessionmaker[Session] | None = None


def api_version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("dantaro-central")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def create_app(settings: Settings | None = None, *, state: ApiState | None = None) -> FastAPI:
    """A FastAPI app serving the published snapshots; settings default to ``get_settings()`` at startup."""
    app = FastAPI(
        title="Dantaro Central",
        version=api_version(),
        description="Read-only market analysis: recommendations, support levels and market status.",
        default_response_class=OrjsonResponse,
        lifespan=_lifespan(settings, state or ApiState()),
    )
    install_error_handlers(app)
    app.include_router(health.router)
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_api_key)])
    for module in (recommendations, levels, market):
        api.include_router(module.router)
    app.include_router(api)
    return app


def _lifespan(settings: Settings | None, state: ApiState) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with ExitStack() as owned:
            app.state.runtime = _build_runtime(settings or get_settings(), state, owned)
            log.info("api_started", exchanges=app.state.runtime.settings.exchanges, version=app.state.runtime.version)
            try:
                yield
            finally:
                log.info("api_stopping")

    return lifespan


def _build_runtime(settings: Settings, state: ApiState, owned: ExitStack) -> ApiRuntime:
    session_factory = state.session_factory
    if session_factory is None:
        engine = make_engine(settings.resolved_database_url)
        owned.callback(engine.dispose)
        session_factory = make_session_factory(engine)
    cache = state.cache if state.cache is not None else _own_redis_cache(settings, owned)
    reader = SnapshotReader(session_factory=session_factory, cache=cache)
    keys = KeyVerifier(lookup=database_key_lookup(session_factory), dev_key_active=settings.dev_key_active())
    return ApiRuntime(settings=settings, reader=reader, keys=keys, version=api_version(), started_at_s=time.monotonic())


def _own_redis_cache(settings: Settings, owned: ExitStack) -> SnapshotCache | None:
    if not settings.redis_url:
        return None
    client = make_redis(settings.redis_url, timeout_s=settings.redis_timeout_s)
    owned.callback(client.close)
    # The API only reads: ttl_s applies to put(), which the worker does with its own TTL.
    return RedisCache(client, prefix=settings.redis_prefix, ttl_s=settings.stale_after_s)
