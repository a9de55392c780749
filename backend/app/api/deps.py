"""Request dependencies: the runtime built by the lifespan, settings, the snapshot reader, auth, and the snapshot.

Invariants: authentication runs before anything reads data (it is a router-level dependency); an unknown
``exchange`` is a 404 naming the configured ones; an exchange with no published run is a 503 ``data_not_ready``
with ``Retry-After``, reported only after every parameter validated (handlers call ``SnapshotLoader.load``).
Blocking storage calls run in the threadpool; pure work (auth cache hits, views) stays on the event loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Protocol, cast

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.auth import ApiPrincipal, KeyVerifier
from app.api.errors import ApiError
from app.api.ratelimit import RateLimiter
from app.api.views import RunMemo, View, freshness_view, recommendations_view
from app.config import Settings
from app.domain import Snapshot, utc_now

MAX_RETRY_AFTER_S = 10.0


class SnapshotSource(Protocol):
    """What the API needs from storage: the current snapshot of an exchange and the tier that served it."""

    def get(self, exchange: str, *, use_cache: bool = True) -> tuple[Snapshot, str] | None:
        """The latest published snapshot and its data source, or None before the first publish."""
        ...


@dataclass(slots=True)
class ApiRuntime:
    """Everything the lifespan built for request handling."""

    settings: Settings
    reader: SnapshotSource
    keys: KeyVerifier
    version: str
    started_at_s: float  # time.monotonic() at startup
    limiter: RateLimiter = field(default_factory=RateLimiter)
    recommendations: RunMemo[list[View]] = field(default_factory=lambda: RunMemo(recommendations_view))


@dataclass(frozen=True, slots=True)
class LoadedSnapshot:
    """The snapshot a request is answered from, with its provenance fields."""

    snapshot: Snapshot
    data_source: str
    freshness: View


async def get_runtime(request: Request) -> ApiRuntime:
    """The runtime the lifespan attached to the app."""
    return cast(ApiRuntime, request.app.state.runtime)


RuntimeDep = Annotated[ApiRuntime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> Settings:
    """The settings the app runs with."""
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_reader(runtime: RuntimeDep) -> SnapshotSource:
    """The snapshot reader."""
    return runtime.reader


ReaderDep = Annotated[SnapshotSource, Depends(get_reader)]

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <api key>")
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorized(message: str) -> ApiError:
    return ApiError(status_code=401, code="unauthorized", message=message, headers={"WWW-Authenticate": "Bearer"})


async def require_api_key(runtime: RuntimeDep, credentials: CredentialsDep) -> ApiPrincipal:
    """The caller's key; 401 when missing or invalid, 429 when its per-minute budget is used up."""
    if credentials is None:
        raise _unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
    secret = credentials.credentials
    principal = runtime.keys.cached(secret)
    if principal is None:
        principal = await run_in_threadpool(runtime.keys.verify, secret)
    if principal is None:
        raise _unauthorized("invalid or revoked API key")
    if principal.rate_limit_per_min is not None:
        retry_after_s = runtime.limiter.hit(principal.key_id, limit_per_min=principal.rate_limit_per_min)
        if retry_after_s is not None:
            raise ApiError(
                status_code=429,
                code="rate_limited",
                message=f"rate limit of {principal.rate_limit_per_min} requests per minute reached; "
                f"retry in {retry_after_s} s",
                headers={"Retry-After": str(retry_after_s)},
            )
    return principal


ApiKeyDep = Annotated[ApiPrincipal, Depends(require_api_key)]


async def resolve_exchange(
    settings: SettingsDep,
    exchange: Annotated[
        str | None, Query(max_length=40, description="exchange id; default: the first configured")
    ] = None,
) -> str:
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


ExchangeDep = Annotated[str, Depends(resolve_exchange)]


@dataclass(frozen=True, slots=True)
class SnapshotLoader:
    """Loads the requested exchange's snapshot when the handler asks, after every parameter was validated."""

    reader: SnapshotSource
    settings: Settings
    exchange: str
    use_cache: bool

    async def load(self) -> LoadedSnapshot:
        """The current snapshot; 503 ``data_not_ready`` before the worker's first publish."""
        found = await run_in_threadpool(self.reader.get, self.exchange, use_cache=self.use_cache)
        if found is None:
            raise _not_ready(self.exchange, self.settings)
        snapshot, data_source = found
        freshness = freshness_view(
            snapshot, data_source=data_source, stale_after_s=self.settings.stale_after_s, now=utc_now()
        )
        return LoadedSnapshot(snapshot=snapshot, data_source=data_source, freshness=freshness)


async def snapshot_loader(
    reader: ReaderDep,
    settings: SettingsDep,
    exchange: ExchangeDep,
    use_cache: Annotated[bool, Query(description="false reads the database, skipping every cache")] = True,
) -> SnapshotLoader:
    """A loader for the requested exchange (reading happens in the handler, so a bad parameter is a 422 first)."""
    return SnapshotLoader(reader=reader, settings=settings, exchange=exchange, use_cache=use_cache)


def _not_ready(exchange: str, settings: Settings) -> ApiError:
    retry_after_s = math.ceil(min(settings.analysis_interval_s, MAX_RETRY_AFTER_S))
    return ApiError(
        status_code=503,
        code="data_not_ready",
        message=f"no analysis has been published yet for exchange {exchange}; the worker publishes its first run "
        f"within about {settings.analysis_interval_s:g} s of starting — retry shortly",
        headers={"Retry-After": str(retry_after_s)},
    )


SnapshotsDep = Annotated[SnapshotLoader, Depends(snapshot_loader)]
