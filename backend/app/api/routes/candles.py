"""``GET /api/v1/candles/{symbol}``: the stored closed candles of one symbol up to the current run's ``as_of``.

The current run is loaded first (503 before the first publish, like every data route); its ``as_of`` bounds the
candles, so the chart shows exactly the candles the run's levels and scores were computed from, and the ``ETag``
is the data routes' (run id + path + query): a 304 needs no candle read. ``symbol`` takes the spellings of
``/support-levels/{symbol}``; a spelling the run analysed is tried first; a pair with no stored candle in the
timeframe and absent from the run is a 404. ``timeframe`` must be one the worker stores (``DANTARO_TIMEFRAMES``);
``limit`` is 1..1000. Bodies come from ``CandleStore`` (memory -> Redis -> database) and ``data_source`` names the
tier that served the candles.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import Field
from starlette.responses import Response

from app.api.candle_store import CandleQuery, CandleStore
from app.api.deps import SnapshotLoader, SnapshotsDep
from app.api.errors import ApiError
from app.api.http_cache import not_modified
from app.api.responses import OrjsonResponse
from app.api.routes.levels import parse_symbol
from app.api.schemas import ERROR_RESPONSES, Freshness, _Strict
from app.api.track_store import MEMORY
from app.config import Settings

router = APIRouter(tags=["candles"])

LIMIT_DEFAULT = 500
LIMIT_MAX = 1000
TIMEFRAME_MAX_CHARS = 8


class CandleItem(_Strict):
    """One closed candle."""

    open_time_ms: int = Field(description="open time, epoch milliseconds (UTC)")
    open: float
    high: float
    low: float
    close: float
    volume: float = Field(description="traded volume in the base currency")


class CandlesResponse(Freshness):
    """The newest closed candles of one symbol up to the current run's as_of, oldest first."""

    symbol: str = Field(description="the pair the candles are of (unified, e.g. BTC/USDT)")
    timeframe: str
    limit: int
    count: int = Field(description="candles returned (fewer than limit when less history is stored)")
    candles: list[CandleItem] = Field(description="ascending by open time; each closed at or before as_of")
    data_source: str = Field(description="tier that served the candles: memory, redis or database")


def _store(snapshots: SnapshotLoader) -> CandleStore:
    store = snapshots.runtime.candles
    assert store is not None, "the lifespan builds the candle store"
    return store


def check_timeframe(settings: Settings, timeframe: str | None) -> str:
    """The requested timeframe (default: the analysis timeframe); ApiError 422 unless the worker stores it."""
    if timeframe is None:
        return settings.analysis_timeframe
    if timeframe not in settings.timeframes:
        stored = ", ".join(settings.timeframes)
        message = f"query parameter timeframe: must be one of the stored timeframes ({stored})"
        raise ApiError(status_code=422, code="invalid_request", message=message)
    return timeframe


@router.get("/candles/{symbol:path}", response_model=CandlesResponse, responses=ERROR_RESPONSES)
async def get_candles(
    symbol: Annotated[str, Path(max_length=64, description="BTC, BTC-USDT, BTC_USDT, USDT-BTC or BTC/USDT")],
    snapshots: SnapshotsDep,
    timeframe: Annotated[
        str | None,
        Query(max_length=TIMEFRAME_MAX_CHARS, description="a stored timeframe (1h, 1d); default: the analysis one"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX, description="the newest `limit` candles")] = LIMIT_DEFAULT,
) -> Response:
    """The newest ``limit`` closed candles of ``symbol`` in ``timeframe`` up to the current run's ``as_of``."""
    candidates = parse_symbol(symbol, default_quote=snapshots.settings.quote_currency(snapshots.exchange))
    chosen = check_timeframe(snapshots.settings, timeframe)
    loaded = await snapshots.load()
    unchanged = not_modified(snapshots.request, loaded.headers)
    if unchanged is not None:
        return unchanged
    snapshot = loaded.snapshot
    in_run = [candidate for candidate in candidates if candidate in snapshot.levels]
    query = CandleQuery(
        exchange=snapshots.exchange,
        run_id=snapshot.run_id,
        timeframe=chosen,
        limit=limit,
        until_ms=int(snapshot.data_as_of.timestamp() * 1000),
        candidates=(*in_run, *(candidate for candidate in candidates if candidate not in in_run)),
        fallback=in_run[0] if in_run else None,
    )
    store = _store(snapshots)
    peeked = store.peek(query) if snapshots.use_cache else None
    found, source = (
        (peeked, MEMORY)
        if peeked is not None
        else await run_in_threadpool(store.get, query, use_cache=snapshots.use_cache)
    )
    if found.symbol is None:
        raise _unknown_symbol(symbol, candidates, chosen, snapshot.exchange)
    head = {"success": True, "symbol": found.symbol, "timeframe": chosen, "limit": limit, "count": found.count}
    body = {**head, "candles": orjson.Fragment(found.candles_json), **loaded.freshness, "data_source": source}
    return OrjsonResponse(body, headers=loaded.headers)


def _unknown_symbol(text: str, candidates: list[str], timeframe: str, exchange: str) -> ApiError:
    return ApiError(
        status_code=404,
        code="unknown_symbol",
        message=f"symbol {text!r} (read as {' or '.join(candidates)}) has no stored {timeframe} candles on {exchange} "
        f"and is not in the current run; list the analysed symbols with GET /api/v1/symbols",
    )
