"""``GET /api/v1/symbols`` (the current run's symbols) and ``GET /api/v1/exchanges`` (each one's freshness).

``/symbols`` takes ``horizon`` as ``/recommendations`` does: rank, score and label are that horizon's, the list is in
its rank order, and the body names it and the served ones.

``/exchanges`` never answers 503: an exchange without a published run is listed with ``status: not_ready`` and
null freshness fields, so a client can watch a deployment come up.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.deps import (
    HORIZON_PARAMETER,
    ApiRuntime,
    AuthDep,
    LoadedSnapshot,
    RuntimeDep,
    SnapshotsDep,
    SnapshotSource,
    horizon_parameter,
)
from app.api.renderers import View, freshness_view, symbols_view
from app.api.responses import OrjsonResponse
from app.api.schemas import ERROR_RESPONSES, ExchangesResponse, SymbolsResponse
from app.config import Settings

router = APIRouter(tags=["catalog"])

_NOT_READY = dict.fromkeys(("run_id", "as_of", "generated_at", "age_seconds", "stale", "data_source"))


@router.get(
    "/symbols",
    response_model=SymbolsResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={"parameters": [HORIZON_PARAMETER]},
)
async def get_symbols(snapshots: SnapshotsDep) -> Response:
    """Every symbol of the current run with its last price, score and label at ``horizon``, best rank first."""
    requested = horizon_parameter(snapshots.request)
    loaded = await snapshots.load()
    chosen = snapshots.horizon(loaded.snapshot, requested)
    return snapshots.answer(loaded, lambda loaded: symbols_body(snapshots.runtime, loaded, chosen))


def symbols_body(runtime: ApiRuntime, loaded: LoadedSnapshot, horizon: str) -> View:
    """The payload of ``GET /symbols`` at ``horizon`` (a served one)."""
    snapshot = loaded.snapshot
    return {
        "success": True,
        "symbols": runtime.fragments.get(snapshot, ("symbols", horizon), lambda: symbols_view(snapshot, horizon)),
        "count": len(snapshot.recommendations),
        "total_analyzed": snapshot.universe_size,
        "horizon": horizon,
        "horizons": list(runtime.horizons.get(snapshot).names),
        **loaded.freshness,
    }


def exchanges_view(
    reader: SnapshotSource, settings: Settings, *, now: datetime, peek_only: bool = False
) -> list[View] | None:
    """Freshness of every configured exchange's current run at ``now`` (may block reading the tiers); with
    ``peek_only`` None unless every exchange has an in-process copy (then no I/O at all)."""
    views: list[View] = []
    for exchange in settings.exchanges:
        found = reader.peek(exchange) or reader.serve_stale(exchange)  # as ``SnapshotLoader.load``: no request waits
        if found is None and peek_only:
            return None
        found = found or reader.get(exchange)
        if found is None:
            views.append({"exchange": exchange, "status": "not_ready", **_NOT_READY})
            continue
        snapshot, data_source = found
        fresh = freshness_view(snapshot, data_source=data_source, stale_after_s=settings.stale_after_s, now=now)
        views.append(
            {
                "exchange": exchange,
                "status": "ready",
                **{name: fresh[name] for name in _NOT_READY},
            }
        )
    return views


@router.get("/exchanges", response_model=ExchangesResponse, responses=ERROR_RESPONSES)
async def get_exchanges(runtime: RuntimeDep, _: AuthDep) -> Response:
    """Each configured exchange with the run it serves: run_id, as_of, generated_at, age and staleness."""
    now = runtime.clock()
    views = exchanges_view(runtime.reader, runtime.settings, now=now, peek_only=True)
    if views is None:
        views = await run_in_threadpool(partial(exchanges_view, runtime.reader, runtime.settings, now=now))
    assert views is not None  # without peek_only every exchange is listed
    return OrjsonResponse(exchanges_body(runtime.settings, views), headers=EXCHANGES_HEADERS)


EXCHANGES_HEADERS = {"Cache-Control": "no-cache"}


def exchanges_body(settings: Settings, views: list[View]) -> View:
    """The payload of ``GET /exchanges``."""
    return {"success": True, "default_exchange": settings.default_exchange, "exchanges": views}
