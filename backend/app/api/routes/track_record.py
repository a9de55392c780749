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
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.deps import HORIZON_PARAMETER, LoadedSnapshot, SnapshotLoader, SnapshotsDep, horizon_parameter
from app.api.errors import ApiError
from app.api.http_cache import cache_control, matches
from app.api.responses import OrjsonResponse
from app.api.routes.levels import SymbolPath, parse_symbol
from app.api.schemas import ERROR_RESPONSES
from app.api.track_record import Window, calls_view, run_row_view, summary_view
from app.api.track_schemas import SymbolTrackRecordResponse, TrackRecordResponse, TrackRecordRunsResponse
from app.api.track_store import MEMORY, Load, TrackRecordStore, View, body_key
from app.domain import Snapshot
from app.storage.queries.track_record import TrackRecordReads, page_cursor, parse_cursor

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
class ServedRun:
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


async def _served(snapshots: SnapshotLoader) -> ServedRun:
    requested = horizon_parameter(snapshots.request)
    loaded = await snapshots.load()
    horizon = snapshots.horizon(loaded.snapshot, requested)
    return ServedRun(loaded, horizon, list(snapshots.runtime.horizons.get(loaded.snapshot).names))


def track_key(exchange: str, version: str, served: ServedRun, parts: tuple[object, ...]) -> str:
    """The key of one track-record body: the exchange, the scores' version, the horizons and the route's parts."""
    return body_key(exchange, version, served.horizon, ",".join(served.horizons), *parts)


def track_etag(key: str) -> str:
    """The ``ETag`` of the track-record body stored under ``key``."""
    return f'W/"track-{key}"'


def track_headers(key: str, served: ServedRun, *, interval_s: float, now: datetime) -> dict[str, str]:
    """``ETag`` (the body's key) and ``Cache-Control`` of a track-record answer."""
    age = cache_control(served.loaded.snapshot, interval_s=interval_s, now=now)
    return {"ETag": track_etag(key), "Cache-Control": age}


def track_body(exchange: str, served: ServedRun, view: View, source: str) -> View:
    """A track-record payload: the stored ``view`` with the run's horizons and the tier that served it."""
    head: View = {"success": True, "exchange": exchange, "horizon": served.horizon}
    return {**head, "horizons": served.horizons, **view, "data_source": source}


async def _find(
    snapshots: SnapshotLoader, served: ServedRun, parts: tuple[object, ...], load: Load, *, body_needed: bool = False
) -> _Found:
    """The body ``load`` builds for the current version of the scores, unless the client holds it and the route
    does not need the body to decide its status (``body_needed``)."""
    store, exchange, use_cache = _store(snapshots), snapshots.exchange, snapshots.use_cache
    version = store.known_version(exchange) if use_cache else None
    if version is None:
        version = await run_in_threadpool(store.version, exchange, use_cache=use_cache)
    key = track_key(exchange, version, served, parts)
    interval_s = snapshots.settings.schedule_interval_s
    headers = track_headers(key, served, interval_s=interval_s, now=snapshots.runtime.clock())
    unchanged = matches(snapshots.request.headers.get("if-none-match"), headers["ETag"])
    if unchanged and not body_needed:
        return _Found(None, MEMORY, headers, unchanged=True)
    view = store.peek(key) if use_cache else None
    if view is not None:
        return _Found(view, MEMORY, headers, unchanged=unchanged)
    view, source = await run_in_threadpool(store.get, exchange, key, load, use_cache=use_cache)
    return _Found(view, source, headers, unchanged=unchanged)


def _answer(snapshots: SnapshotLoader, served: ServedRun, found: _Found) -> Response:
    if found.unchanged or found.view is None:
        return Response(status_code=304, headers=found.headers)
    return OrjsonResponse(track_body(snapshots.exchange, served, found.view, found.source), headers=found.headers)


def summary_parts(snapshot: Snapshot, *, days: int) -> tuple[object, ...]:
    """The key parts of ``/track-record``: the window of ``days`` ending at the run's ``as_of``."""
    return ("summary", days, Window.ending(snapshot.data_as_of, days=days).until.isoformat())


def runs_parts(*, limit: int, before: str | None) -> tuple[object, ...]:
    """The key parts of ``/track-record/runs``."""
    return ("runs", limit, before)


def symbol_readings(snapshot: Snapshot, candidates: list[str]) -> list[str]:
    """``candidates`` with the ones the run analysed first (the order ``/track-record/symbols`` tries them in)."""
    in_run = [candidate for candidate in candidates if candidate in snapshot.levels]
    return in_run + [candidate for candidate in candidates if candidate not in in_run]


def symbol_parts(snapshot: Snapshot, ordered: list[str], *, days: int) -> tuple[object, ...]:
    """The key parts of ``/track-record/symbols/{symbol}``."""
    return ("symbol", days, Window.ending(snapshot.data_as_of, days=days).until.isoformat(), *ordered)


@router.get("/track-record", response_model=TrackRecordResponse, responses=ERROR_RESPONSES, openapi_extra=_EXTRA)
async def get_track_record(snapshots: SnapshotsDep, days: DaysQuery = DAYS_DEFAULT) -> Response:
    """How the calls of the last ``days`` days at ``horizon`` turned out, with a random baseline on the same runs."""
    served = await _served(snapshots)
    window = Window.ending(served.loaded.snapshot.data_as_of, days=days)
    exchange, horizon = snapshots.exchange, served.horizon

    def load(repository: TrackRecordReads) -> View:
        scores = repository.scores(exchange=exchange, horizon=horizon, since=window.since, until=window.until)
        return summary_view(scores, window=window)

    found = await _find(snapshots, served, summary_parts(served.loaded.snapshot, days=days), load)
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
        check_cursor(before)
    served = await _served(snapshots)
    exchange, horizon = snapshots.exchange, served.horizon

    def load(repository: TrackRecordReads) -> View:
        rows = repository.page(exchange=exchange, horizon=horizon, limit=limit + 1, before=before)
        more = len(rows) > limit
        page = rows[:limit]
        return {
            "count": len(page),
            "limit": limit,
            "runs": [run_row_view(score) for score in page],
            "next_before": page_cursor(page[-1]) if more else None,
        }

    return _answer(snapshots, served, await _find(snapshots, served, runs_parts(limit=limit, before=before), load))


def check_cursor(before: str) -> None:
    """ApiError 422 ``invalid_cursor`` unless ``before`` is a cursor a page returned."""
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
    ordered = symbol_readings(snapshot, candidates)
    in_run = [candidate for candidate in ordered if candidate in snapshot.levels]
    window = Window.ending(snapshot.data_as_of, days=days)
    exchange = snapshots.exchange

    def load(repository: TrackRecordReads) -> View:
        for candidate in ordered:
            outcomes = repository.symbol_outcomes(
                exchange=exchange, symbol=candidate, horizon=horizon, since=window.since
            )
            view = calls_view(outcomes, window=window)
            if view["count"]:
                return {"symbol": candidate, **view}
        return {"symbol": in_run[0] if in_run else None, **calls_view([], window=window)}

    parts = symbol_parts(snapshot, ordered, days=days)
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
