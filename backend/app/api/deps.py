"""Request dependencies: the runtime built by the lifespan, settings, the snapshot reader, auth, and the snapshot.

Invariants: authentication runs before anything reads data (it is a router-level dependency; for a request with a
body, ``app.api.edge`` has already run it before the body was read, and it is not run or counted twice: the
principal is kept in the scope); a client's refused keys are throttled (``app.api.key_throttle``); dependencies are
kept flat (one node each) because FastAPI's resolution cost grows with the graph and runs on every request; an unknown
``exchange`` is a 404 naming the configured ones; an exchange with no published run is a 503 ``data_not_ready``
with ``Retry-After``, reported only after every parameter validated (handlers call ``SnapshotLoader.load``).
Blocking storage calls run in the threadpool; pure work (auth cache hits, views) stays on the event loop; a key
verification that has just expired and an overdue snapshot check are served while one background refresh re-checks
them (``serve_stale``, ``app.single_flight``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Annotated, Protocol, cast

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry
from starlette.responses import Response
from starlette.types import Scope

from app.api.auth import ApiPrincipal, KeyStoreUnavailableError, KeyVerifier, UsageRecorder
from app.api.candle_store import CandleStore
from app.api.errors import ApiError
from app.api.horizons import (
    HORIZON_DESCRIPTION,
    HORIZON_FORM,
    HORIZON_MAX_CHARS,
    HORIZON_PATTERN,
    ServedHorizons,
    pick_horizon,
    served_horizons,
)
from app.api.http_cache import cache_headers, not_modified
from app.api.key_throttle import FailedKeyThrottle, client_address
from app.api.metrics import ApiMetrics
from app.api.observability import KEY_ID_SCOPE
from app.api.ratelimit import Limiter, RateLimiter
from app.api.renderers import FragmentMemo, HorizonMemo, RunMemo, View, freshness_view, recommendations_view
from app.api.responses import OrjsonResponse
from app.api.run_stream import RunHub
from app.api.stream_slots import LocalStreamSlots, StreamSlots
from app.api.track_store import TrackRecordStore
from app.config import Settings
from app.domain import Snapshot, utc_now
from app.single_flight import Joined
from app.storage.redis_client import RedisClient
from app.storage.sql import Database

MAX_RETRY_AFTER_S = 10.0
PRINCIPAL_SCOPE = "dantaro.principal"  # scope key where authentication leaves the caller's ApiPrincipal
DATABASE_SOURCE = "database"  # the reader's data_source when neither memory nor the shared cache served


class SnapshotSource(Protocol):
    """What the API needs from storage: the current snapshot of an exchange and the tier that served it."""

    def get(self, exchange: str, *, use_cache: bool = True) -> tuple[Snapshot, str] | None:
        """The latest published snapshot and its data source, or None before the first publish."""
        ...

    def peek(self, exchange: str) -> tuple[Snapshot, str] | None:
        """The per-process copy when it is fresh enough to serve without I/O, else None."""
        ...

    def serve_stale(self, exchange: str) -> tuple[Snapshot, str] | None:
        """The per-process copy whatever its age, while one background refresh re-checks it; else None; no I/O."""
        ...

    def cache_status(self) -> str:
        """``none``, ``ok`` or ``down``: the shared cache tier's state as last observed."""
        ...


@dataclass(slots=True)
class ApiRuntime:
    """Everything the lifespan built for request handling."""

    settings: Settings
    reader: SnapshotSource
    keys: KeyVerifier
    version: str
    started_at_s: float  # time.monotonic() at startup
    limiter: Limiter = field(default_factory=RateLimiter)
    key_throttle: FailedKeyThrottle = field(default_factory=FailedKeyThrottle)
    usage: UsageRecorder | None = None
    recommendations: HorizonMemo[list[View]] = field(default_factory=lambda: HorizonMemo(recommendations_view))
    horizons: RunMemo[ServedHorizons] = field(default_factory=lambda: RunMemo(served_horizons))
    fragments: FragmentMemo = field(default_factory=FragmentMemo)
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    database: Database | None = None  # for the readiness check
    redis_client: RedisClient | None = None  # set only when Redis is configured
    extra_metrics: CollectorRegistry | None = None  # `dantaro run`: the in-process worker's registry
    track_record: TrackRecordStore | None = None  # built by the lifespan (the track-record routes' tiers)
    clock: Callable[[], datetime] = utc_now  # the wall clock of the freshness fields and max-age (tests freeze it)
    candles: CandleStore | None = None  # built by the lifespan (the candles route's tiers)
    runs: RunHub | None = None  # built by the lifespan: the live stream's source
    stream_slots: StreamSlots = field(default_factory=LocalStreamSlots)  # open streams per key
    fetches: Joined[str, tuple[Snapshot, str] | None] = field(default_factory=Joined)  # snapshot reads per exchange


@dataclass(frozen=True, slots=True)
class LoadedSnapshot:
    """The snapshot a request is answered from, with its provenance fields."""

    snapshot: Snapshot
    data_source: str
    freshness: View
    headers: dict[str, str]  # ETag and Cache-Control


def runtime_of(request: Request) -> ApiRuntime:
    """The runtime the lifespan attached to the app."""
    return cast(ApiRuntime, request.app.state.runtime)


async def get_runtime(request: Request) -> ApiRuntime:
    """The runtime the lifespan attached to the app (as a dependency)."""
    return runtime_of(request)


RuntimeDep = Annotated[ApiRuntime, Depends(get_runtime)]


def _unauthorized(message: str) -> ApiError:
    return ApiError(status_code=401, code="unauthorized", message=message, headers={"WWW-Authenticate": "Bearer"})


def bearer_secret(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <secret>`` header value, or None."""
    if not authorization:
        return None
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    return secret if scheme.lower() == "bearer" and secret else None


def _rate_limited(limit_per_min: int, retry_after_s: int) -> ApiError:
    return ApiError(
        status_code=429,
        code="rate_limited",
        message=f"rate limit of {limit_per_min} requests per minute reached; retry in {retry_after_s} s",
        headers={"Retry-After": str(retry_after_s)},
    )


async def require_api_key(request: Request) -> ApiPrincipal:
    """The caller's key; 401 when missing or invalid, 429 when its per-minute budget is used up.

    Deliberately one flat dependency (no sub-dependencies): it runs on every request and FastAPI's dependency
    resolution costs per node. The OpenAPI spec declares the bearer scheme separately (``app.py``).
    """
    return await authenticate(request, runtime_of(request))


AuthDep = Annotated[ApiPrincipal, Depends(require_api_key)]


def known_principal(keys: KeyVerifier, secret: str) -> ApiPrincipal | None:
    """The key's principal from the in-memory table of verified keys (no I/O), or None when it must be verified."""
    principal = keys.cached(secret)
    if principal is None:  # just expired: served while one background refresh re-checks it
        principal = keys.serve_stale(secret)
    return principal


def admit(runtime: ApiRuntime, principal: ApiPrincipal) -> int | None:
    """Note the key's use and count the request against its budget: None when allowed, else the seconds until it
    refills (a refused request is not counted, so asking again is harmless)."""
    if runtime.usage is not None and not principal.development:
        runtime.usage.record(principal.key_id)
    if principal.rate_limit_per_min is None:
        return None
    return runtime.limiter.hit(principal.key_id, limit_per_min=principal.rate_limit_per_min)


async def authenticate(request: Request, runtime: ApiRuntime) -> ApiPrincipal:
    """Check the bearer key and count the request against its budget (401 / 429 as ``ApiError``)."""
    return await authenticate_scope(request.scope, runtime)


def header_value(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes) in an ASGI scope, or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def authenticate_scope(scope: Scope, runtime: ApiRuntime) -> ApiPrincipal:
    """``authenticate`` on a plain ASGI scope, once per request: 401 without a valid key, 429 when the client's
    failed keys or the key's budget are used up, 503 when the key store cannot be read (all ``ApiError``)."""
    done = scope.get(PRINCIPAL_SCOPE)
    if isinstance(done, ApiPrincipal):
        return done
    secret = bearer_secret(header_value(scope, b"authorization"))
    if secret is None:
        raise _unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
    principal = known_principal(runtime.keys, secret)
    if principal is None:
        principal = await _verify(secret, client_address(scope.get("client")), runtime)
    scope[PRINCIPAL_SCOPE] = principal
    scope[KEY_ID_SCOPE] = principal.key_id
    retry_after_s = admit(runtime, principal)
    if retry_after_s is not None:
        assert principal.rate_limit_per_min is not None  # only a limited key is refused
        runtime.metrics.refused_by_rate_limit()
        raise _rate_limited(principal.rate_limit_per_min, retry_after_s)
    return principal


async def _verify(secret: str, client: str, runtime: ApiRuntime) -> ApiPrincipal:
    """Ask the key store about ``secret`` unless ``client`` is throttled; count a refusal against ``client``."""
    throttle = runtime.key_throttle
    if not runtime.keys.known(secret):
        retry_after_s = throttle.retry_after_s(client)
        if retry_after_s is not None:
            raise ApiError(
                status_code=429,
                code="too_many_failed_keys",
                message=f"{throttle.limit_per_min} invalid API keys from this client this minute; "
                f"retry in {retry_after_s} s with a valid key",
                headers={"Retry-After": str(retry_after_s)},
            )
    try:
        principal = await runtime.keys.check(secret)
    except KeyStoreUnavailableError:
        raise ApiError(
            status_code=503,
            code="key_store_unavailable",
            message="API keys cannot be checked right now (database unavailable); retry shortly",
            headers={"Retry-After": "5"},
        ) from None
    if principal is None:
        throttle.record_failure(client)
        raise _unauthorized("invalid or revoked API key")
    return principal


def resolve_exchange(settings: Settings, exchange: str | None) -> str:
    """The requested exchange (lower-cased), or the default one; 404 when it is not configured."""
    if exchange is None or not exchange.strip():
        return settings.default_exchange
    name = exchange.strip().lower()
    if name not in settings.exchanges:
        raise ApiError(
            status_code=404,
            code="unknown_exchange",
            message=f"exchange {exchange!r} is not configured; available: {', '.join(settings.exchanges)}",
        )
    return name


@dataclass(frozen=True, slots=True)
class SnapshotLoader:
    """Loads the requested exchange's snapshot when the handler asks, after every parameter was validated."""

    runtime: ApiRuntime
    exchange: str
    use_cache: bool
    request: Request

    @property
    def settings(self) -> Settings:
        """The settings the app runs with."""
        return self.runtime.settings

    async def _fetch(self, reader: SnapshotSource) -> tuple[Snapshot, str] | None:
        """From the tiers on a worker thread; concurrent cached fetches of one exchange share one read."""
        fetch = partial(run_in_threadpool, reader.get, self.exchange, use_cache=self.use_cache)
        return await self.runtime.fetches.run(self.exchange, fetch) if self.use_cache else await fetch()

    async def load(self) -> LoadedSnapshot:
        """The current snapshot; 503 ``data_not_ready`` before the worker's first publish."""
        reader = self.runtime.reader
        found = reader.peek(self.exchange) if self.use_cache else None
        if found is None and self.use_cache:
            # Check overdue: serve the copy now and let one background refresh re-check it (no request waits;
            # a new run announced by a notification has already dropped the copy, so it is fetched below).
            found = reader.serve_stale(self.exchange)
        if found is None:
            found = await self._fetch(reader)
        if found is None:
            raise _not_ready(self.exchange, self.settings)
        snapshot, data_source = found
        self._observe(snapshot, data_source)
        now = self.runtime.clock()
        stale_after_s = self.settings.stale_after_s
        freshness = freshness_view(snapshot, data_source=data_source, stale_after_s=stale_after_s, now=now)
        headers = cache_headers(snapshot, self.request.scope, interval_s=self.settings.schedule_interval_s, now=now)
        return LoadedSnapshot(snapshot=snapshot, data_source=data_source, freshness=freshness, headers=headers)

    def _observe(self, snapshot: Snapshot, data_source: str) -> None:
        fallback = None
        if data_source == DATABASE_SOURCE and self.use_cache:
            cache_status = self.runtime.reader.cache_status()
            fallback = None if cache_status == "none" else "redis_error" if cache_status == "down" else "cache_miss"
        self.runtime.metrics.observe_read(
            exchange=self.exchange, tier=data_source, generated_at=snapshot.generated_at, fallback=fallback
        )

    def horizon(self, snapshot: Snapshot, requested: str | None) -> str:
        """The served horizon ``requested`` names (None: the run's default); ApiError 422 when the run lacks it."""
        return pick_horizon(self.runtime.horizons.get(snapshot), requested, snapshot=snapshot)

    async def respond(self, build: Callable[[LoadedSnapshot], View]) -> Response:
        """``build``'s body as JSON with caching headers, or an empty 304 when ``If-None-Match`` matches."""
        return self.answer(await self.load(), build)

    def answer(self, loaded: LoadedSnapshot, build: Callable[[LoadedSnapshot], View]) -> Response:
        """``respond`` for a snapshot already loaded. ``build`` runs first, so an error it raises (a 404, a 422) is
        answered as such: ``If-None-Match`` only ever turns a successful answer into a 304."""
        body = build(loaded)
        unchanged = not_modified(self.request, loaded.headers)
        if unchanged is not None:
            return unchanged
        return OrjsonResponse(body, headers=loaded.headers)


EXCHANGE_MAX_CHARS = 40
_TRUE = frozenset({"1", "t", "true", "y", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "n", "no", "off"})
# ``snapshot_loader`` reads these itself (FastAPI's per-parameter resolution costs more than the handler);
# ``route_table.add_routes_flat`` documents them in the OpenAPI spec of every route that takes ``SnapshotsDep``.
LOADER_QUERY_PARAMETERS: list[dict[str, object]] = [
    {
        "name": "exchange",
        "in": "query",
        "required": False,
        "description": "exchange id; default: the first configured",
        "schema": {"type": "string", "maxLength": EXCHANGE_MAX_CHARS, "title": "Exchange"},
    },
    {
        "name": "use_cache",
        "in": "query",
        "required": False,
        "description": "false reads the database, skipping every cache",
        "schema": {"type": "boolean", "default": True, "title": "Use Cache"},
    },
]


# Routes that take ``horizon`` read it with ``horizon_parameter`` and declare this in their ``openapi_extra``.
HORIZON_PARAMETER: dict[str, object] = {
    "name": "horizon",
    "in": "query",
    "required": False,
    "description": HORIZON_DESCRIPTION,
    "schema": {"type": "string", "maxLength": HORIZON_MAX_CHARS, "pattern": HORIZON_PATTERN, "title": "Horizon"},
}


def _invalid(name: str, message: str) -> ApiError:
    return ApiError(status_code=422, code="invalid_request", message=f"query parameter {name}: {message}")


def loader_parameters(request: Request) -> tuple[str | None, bool]:
    """``exchange`` and ``use_cache`` from the query string; ApiError 422 when malformed."""
    if not request.scope["query_string"]:
        return None, True
    params = request.query_params
    exchange = params.get("exchange")
    if exchange is not None and len(exchange) > EXCHANGE_MAX_CHARS:
        raise _invalid("exchange", f"must be at most {EXCHANGE_MAX_CHARS} characters")
    text = params.get("use_cache")
    if text is None:
        return exchange, True
    flag = text.strip().lower()
    if flag not in _TRUE | _FALSE:
        raise _invalid("use_cache", "must be true or false")
    return exchange, flag in _TRUE


def horizon_parameter(request: Request) -> str | None:
    """``horizon`` from the query string, None when absent; ApiError 422 when it cannot be a horizon name (whether the
    run serves it is checked once the run is loaded: ``SnapshotLoader.horizon``)."""
    if not request.scope["query_string"]:
        return None
    text = request.query_params.get("horizon")
    if text is not None and (len(text) > HORIZON_MAX_CHARS or HORIZON_FORM.fullmatch(text) is None):
        rule = f"must be a number and one of m, h, d, w (e.g. 4h), at most {HORIZON_MAX_CHARS} characters"
        raise _invalid("horizon", rule)
    return text


async def snapshot_loader(request: Request) -> SnapshotLoader:
    """Authenticates the caller, then a loader for the requested exchange (reading happens in the handler, after
    the handler's own parameters validated). Routes taking this need no separate auth dependency."""
    runtime = runtime_of(request)
    await authenticate(request, runtime)
    exchange, use_cache = loader_parameters(request)
    name = resolve_exchange(runtime.settings, exchange)
    return SnapshotLoader(runtime=runtime, exchange=name, use_cache=use_cache, request=request)


def _not_ready(exchange: str, settings: Settings) -> ApiError:
    retry_after_s = math.ceil(min(settings.schedule_interval_s, MAX_RETRY_AFTER_S))
    return ApiError(
        status_code=503,
        code="data_not_ready",
        message=f"no analysis has been published yet for exchange {exchange}; the worker publishes its first run "
        f"within about {settings.schedule_interval_s:g} s of starting — retry shortly",
        headers={"Retry-After": str(retry_after_s)},
    )


SnapshotsDep = Annotated[SnapshotLoader, Depends(snapshot_loader)]
