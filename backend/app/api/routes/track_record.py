"""``GET /api/v1/track-record``, ``/track-record/runs`` and ``/track-record/symbols/{symbol}``: how past calls did.

Every route first loads the exchange's current run (503 before the first publish, like the other data routes):
``horizon`` must be one it serves (422 ``unknown_horizon`` listing them; default: its default horizon), and its
``as_of`` ends the ``days`` window. No scored run yet is a 200 with ``runs_scored: 0`` / empty lists.
Bodies come from ``TrackRecordStore`` (memory -> Redis -> database, keyed by the scores' version); the ``ETag`` is
that key, so a 304 needs no body at all — except where the body decides between 200 and 404 (a symbol absent from
the current run): that body is read first, so ``If-None-Match`` never turns a 404 into a 304. ``symbol`` takes the
spellings of ``/support-levels/{symbol}``; a pair with no call in the window and absent from the current run is a
404. ``before`` is the opaque cursor a previous page returned as ``next_before`` (pages are newest first and stable
while new runs are scored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.deps import HORIZON_PARAMETER, LoadedSnapshot, SnapshotLoader, SnapshotsDep, horizon_parameter
from app.api.errors import ApiError
from app.api.http_cache import matches, max_age_s
from app.api.responses import OrjsonResponse
from app.api.routes.levels import SymbolPath, parse_symbol
from app.api.schemas import ERROR_RESPONSES
from app.api.track_record import Window, calls_view, run_row_view, summary_view
from app.api.track_schemas import SymbolTrackRecordResponse, TrackRecordResponse, TrackRecordRunsResponse
from app.api.track_store import MEMORY, Load, TrackRecordStore, View, body_key
from app.domain import utc_now
from app.storage.track_record import TrackRecordRepository, page_cursor, parse_cursor

router = APIRouter(tags=["track-record"])

DAYS_DEFAULT = 30
DAYS_MAX = 365
LIMIT_DEFAULT = 50
LIMIT_MAX = 200
CURSOR_MAX_CHARS = 200
DaysQuery = Annotated[
    int, Query(ge=1, le=DAYS_MAX, description="the window: runs entered in the last `days` days before `until`")
]
TRACK_HORIZON = "a horizon the current run serves (listed in `horizons`); default: the run's default horizon"
_EXTRA = {"parameters": [{**HORIZON_PARAMETER, "description": TRACK_HORIZON}]}


def _store(snapshots: SnapshotLoader) -> TrackRecordStore:
    store = snapshots.runtime.track_record
    assert store is not None, "the lifespan builds the track-record store"
    return store


@dataclass(frozen=True, slots=True)
class _Served:
    """The current run, the horizon asked for (one it serves) and every horizon it serves."""

    loaded: LoadedSnapshot
    horizon: str
    horizons: list[str]


@dataclass(frozen=True, slots=True)
class _Found:
    """A body (None when the client already holds it and it was not needed), the tier that served it, its caching
    headers, and whether the client holds it (a 304 once the route found nothing wrong)."""

    view: View | None
    source: str
    headers: dict[str, str]
    unchanged: bool = False


async def _served(snapshots: SnapshotLoader) -> _Served:
    requested = horizon_parameter(snapshots.request)
    loaded = await snapshots.load()
    horizon = snapshots.horizon(loaded.snapshot, requested)
    return _Served(loaded, horizon, list(snapshots.runtime.horizons.get(loaded.snapshot).names))


async def _find(
    snapshots: SnapshotLoader, served: _Served, parts: tuple[object, ...], load: Load, *, body_needed: bool = False
) -> _Found:
    """The body ``load`` builds for the current version of the scores, unless the client holds it and the route
    does not need the body to decide its status (``body_needed``)."""
    store, exchange, use_cache = _store(snapshots), snapshots.exchange, snapshots.use_cache
    version = store.cached_version(exchange) if use_cache else None
    if version is None:
        version = await run_in_threadpool(store.version, exchange, use_cache=use_cache)
    key = body_key(exchange, version, served.horizon, ",".join(served.horizons), *parts)
    age_s = max_age_s(served.loaded.snapshot, interval_s=snapshots.settings.schedule_interval_s, now=utc_now())
    headers = {"ETag": f'W/"track-{key}"', "Cache-Control": f"private, max-age={age_s}"}
    unchanged = matches(snapshots.request.headers.get("if-none-match"), headers["ETag"])
    if unchanged and not body_needed:
        return _Found(None, MEMORY, headers, unchanged=True)
    view = store.peek(key) if use_cache else None
    if view is not None:
        return _Found(view, MEMORY, headers, unchanged=unchanged)
    view, source = await run_in_threadpool(store.get, exchange, key, load, use_cache=use_cache)
    return _Found(view, source, headers, unchanged=unchanged)


def _answer(snapshots: SnapshotLoader, served: _Served, found: _Found) -> Response:
    if found.unchanged or found.view is None:
        return Response(status_code=304, headers=found.headers)
    head: View = {"success": True, "exchange": snapshots.exchange, "horizon": served.horizon}
    body = {**head, "horizons": served.horizons, **found.view, "data_source": found.source}
    return OrjsonResponse(body, headers=found.headers)


@router.get("/track-record", response_model=TrackRecordResponse, responses=ERROR_RESPONSES, openapi_extra=_EXTRA)
async def get_track_record(snapshots: SnapshotsDep, days: DaysQuery = DAYS_DEFAULT) -> Response:
    """How the calls of the last ``days`` days at ``horizon`` turned out, with a random baseline on the same runs."""
    served = await _served(snapshots)
    window = Window.ending(served.loaded.snapshot.data_as_of, days=days)
    exchange, horizon = snapshots.exchange, served.horizon

    def load(repository: TrackRecordRepository) -> View:
        scores = repository.scores(exchange=exchange, horizon=horizon, since=window.since, until=window.until)
        return summary_view(scores, window=window)

    found = await _find(snapshots, served, ("summary", days, window.until.isoformat()), load)
    return _answer(snapshots, served, found)


@router.get(
    "/track-record/runs", response_model=TrackRecordRunsResponse, responses=ERROR_RESPONSES, openapi_extra=_EXTRA
)
async def get_track_record_runs(
    snapshots: SnapshotsDep,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX, description="runs per page")] = LIMIT_DEFAULT,
    before: Annotated[
        str | None, Query(max_length=CURSOR_MAX_CHARS, description="`next_before` of the previous page")
    ] = None,
) -> Response:
    """One row per scored run at ``horizon``, newest first, ``limit`` per page."""
    if before is not None:
        _check_cursor(before)
    served = await _served(snapshots)
    exchange, horizon = snapshots.exchange, served.horizon

    def load(repository: TrackRecordRepository) -> View:
        rows = repository.page(exchange=exchange, horizon=horizon, limit=limit + 1, before=before)
        more = len(rows) > limit
        page = rows[:limit]
        return {
            "count": len(page),
            "limit": limit,
            "runs": [run_row_view(score) for score in page],
            "next_before": page_cursor(page[-1]) if more else None,
        }

    return _answer(snapshots, served, await _find(snapshots, served, ("runs", limit, before), load))


def _check_cursor(before: str) -> None:
    try:
        parse_cursor(before)
    except ValueError:
        message = "query parameter before: not a cursor; pass the next_before of a previous page"
        raise ApiError(status_code=422, code="invalid_cursor", message=message) from None


@router.get(
    "/track-record/symbols/{symbol:path}",
    response_model=SymbolTrackRecordResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=_EXTRA,
)
async def get_symbol_track_record(
    symbol: SymbolPath,
    snapshots: SnapshotsDep,
    days: DaysQuery = DAYS_DEFAULT,
) -> Response:
    """``symbol``'s calls of the last ``days`` days at ``horizon``: label, score, rank and what followed."""
    candidates = parse_symbol(symbol, default_quote=snapshots.settings.quote_currency(snapshots.exchange))
    served = await _served(snapshots)
    snapshot, horizon = served.loaded.snapshot, served.horizon
    in_run = [candidate for candidate in candidates if candidate in snapshot.levels]
    ordered = in_run + [candidate for candidate in candidates if candidate not in in_run]
    window = Window.ending(snapshot.data_as_of, days=days)
    exchange = snapshots.exchange

    def load(repository: TrackRecordRepository) -> View:
        for candidate in ordered:
            outcomes = repository.symbol_outcomes(
                exchange=exchange, symbol=candidate, horizon=horizon, since=window.since
            )
            view = calls_view(outcomes, window=window)
            if view["count"]:
                return {"symbol": candidate, **view}
        return {"symbol": in_run[0] if in_run else None, **calls_view([], window=window)}

    parts = ("symbol", days, window.until.isoformat(), *ordered)
    found = await _find(snapshots, served, parts, load, body_needed=not in_run)  # in the run: never a 404
    if found.view is not None and found.view["symbol"] is None:
        raise _unknown_symbol(symbol, candidates, snapshot.exchange, days)
    return _answer(snapshots, served, found)


def _unknown_symbol(text: str, candidates: list[str], exchange: str, days: int) -> ApiError:
    return ApiError(
        status_code=404,
        code="unknown_symbol",
        message=f"symbol {text!r} (read as {' or '.join(candidates)}) has no scored call on {exchange} in the last "
        f"{days} days and is not in the current run; list the analysed symbols with GET /api/v1/symbols",
    )
