"""One function per API endpoint: its parameters, its request and its model (``Call``); ``Endpoints`` makes each a
method of both clients (``_binding``). Parameters left as None are not sent: the API's defaults apply (documented
in ``docs/api.md``: e.g. ``top_n`` 50, the run's default ``horizon``, the default ``exchange``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote

import httpx2

from dantaro_client._binding import Endpoint, StreamEndpoint
from dantaro_client._core import Call, M, model_reader
from dantaro_client.models import (
    BundleRequest,
    BundleResponse,
    CandlesResponse,
    ExchangesResponse,
    HealthResponse,
    Label,
    MarketStatusResponse,
    PairlistResponse,
    RecommendationsResponse,
    SupportLevelsResponse,
    SymbolsResponse,
)
from dantaro_client.track_models import SymbolTrackRecordResponse, TrackRecordResponse, TrackRecordRunsResponse

V1 = "/api/v1"


def _get(path: str, model: type[M], **query: str | int | float | None) -> Call[M]:
    params = {name: str(value) for name, value in query.items() if value is not None}
    return Call("GET", path, model_reader(model), params=params)


def _symbol(symbol: str) -> str:
    return quote(symbol, safe="/")  # BTC, BTC-USDT, BTC_USDT or BTC/USDT, as the API reads them


def health() -> Call[HealthResponse]:
    """``GET /health``: the process is up (no key needed)."""
    return _get("/health", HealthResponse)


def recommendations(
    *,
    top_n: int | None = None,
    min_score: float | None = None,
    label: Label | None = None,
    horizon: str | None = None,
    exchange: str | None = None,
) -> Call[RecommendationsResponse]:
    """``GET /api/v1/recommendations``: the current run's best-ranked symbols at ``horizon``, filtered."""
    query = {"top_n": top_n, "min_score": min_score, "label": label, "horizon": horizon, "exchange": exchange}
    return _get(f"{V1}/recommendations", RecommendationsResponse, **query)


def support_levels(symbol: str, *, exchange: str | None = None) -> Call[SupportLevelsResponse]:
    """``GET /api/v1/support-levels/{symbol}``: support and resistance of one symbol."""
    return _get(f"{V1}/support-levels/{_symbol(symbol)}", SupportLevelsResponse, exchange=exchange)


def market_status(*, exchange: str | None = None) -> Call[MarketStatusResponse]:
    """``GET /api/v1/market-status``: the market as the current run saw it, and the data's health."""
    return _get(f"{V1}/market-status", MarketStatusResponse, exchange=exchange)


def symbols(*, horizon: str | None = None, exchange: str | None = None) -> Call[SymbolsResponse]:
    """``GET /api/v1/symbols``: every symbol of the current run, in rank order at ``horizon``."""
    return _get(f"{V1}/symbols", SymbolsResponse, horizon=horizon, exchange=exchange)


def exchanges() -> Call[ExchangesResponse]:
    """``GET /api/v1/exchanges``: every configured exchange and the run it serves."""
    return _get(f"{V1}/exchanges", ExchangesResponse)


def bundle(
    *,
    symbols: Sequence[str] = (),
    include_recommendations: bool = True,
    recommendations_count: int = 50,
    include_support_levels: bool | None = None,
    include_market_status: bool = True,
    horizon: str | None = None,
    exchange: str | None = None,
) -> Call[BundleResponse]:
    """``POST /api/v1/bundle``: recommendations, levels of ``symbols`` and market status from one run
    (``include_support_levels`` defaults to whether ``symbols`` were given)."""
    request = BundleRequest(
        include_recommendations=include_recommendations,
        recommendations_count=recommendations_count,
        include_support_levels=bool(symbols) if include_support_levels is None else include_support_levels,
        symbols=list(symbols),
        include_market_status=include_market_status,
        horizon=horizon,
    )
    body = json.dumps(request.model_dump(mode="json")).encode()
    params = {} if exchange is None else {"exchange": exchange}
    return Call("POST", f"{V1}/bundle", model_reader(BundleResponse), params=params, json_body=body)


def candles(
    symbol: str, *, timeframe: str | None = None, limit: int | None = None, exchange: str | None = None
) -> Call[CandlesResponse]:
    """``GET /api/v1/candles/{symbol}``: the newest ``limit`` closed candles up to the current run's as_of."""
    path = f"{V1}/candles/{_symbol(symbol)}"
    return _get(path, CandlesResponse, timeframe=timeframe, limit=limit, exchange=exchange)


def track_record(
    *, days: int | None = None, horizon: str | None = None, exchange: str | None = None
) -> Call[TrackRecordResponse]:
    """``GET /api/v1/track-record``: how the calls of the last ``days`` days turned out, against a random baseline."""
    return _get(f"{V1}/track-record", TrackRecordResponse, days=days, horizon=horizon, exchange=exchange)


def track_record_runs(
    *, limit: int | None = None, before: str | None = None, horizon: str | None = None, exchange: str | None = None
) -> Call[TrackRecordRunsResponse]:
    """``GET /api/v1/track-record/runs``: scored runs, newest first; pass ``next_before`` as ``before`` to page."""
    query = {"limit": limit, "before": before, "horizon": horizon, "exchange": exchange}
    return _get(f"{V1}/track-record/runs", TrackRecordRunsResponse, **query)


def symbol_track_record(
    symbol: str, *, days: int | None = None, horizon: str | None = None, exchange: str | None = None
) -> Call[SymbolTrackRecordResponse]:
    """``GET /api/v1/track-record/symbols/{symbol}``: one symbol's calls of the last ``days`` days."""
    path = f"{V1}/track-record/symbols/{_symbol(symbol)}"
    return _get(path, SymbolTrackRecordResponse, days=days, horizon=horizon, exchange=exchange)


def pairlist(
    *,
    top_n: int | None = None,
    min_score: float | None = None,
    label: Label | None = None,
    quote: str | None = None,
    horizon: str | None = None,
    exchange: str | None = None,
) -> Call[PairlistResponse]:
    """``GET /api/v1/pairlist``: ccxt pairs, best first (the recommendations' filters, plus ``quote``)."""
    query = {"top_n": top_n, "min_score": min_score, "label": label, "quote": quote, "horizon": horizon}
    return _get(f"{V1}/pairlist", PairlistResponse, **query, exchange=exchange)


def stream(*, exchange: str | None = None, last_event_id: str | None = None) -> Call[httpx2.Response]:
    """``GET /api/v1/stream``: the live stream of new runs (``last_event_id``: resume after that event)."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    params = {} if exchange is None else {"exchange": exchange}
    return Call("GET", f"{V1}/stream", _opened, params=params, headers=headers, stream=True)


def _opened(response: httpx2.Response) -> httpx2.Response:
    return response  # the stream's body is read line by line by the event stream


class Endpoints:
    """Every endpoint as a method (each name below is the module-level function of the same name)."""

    health = Endpoint(health)
    recommendations = Endpoint(recommendations)
    support_levels = Endpoint(support_levels)
    market_status = Endpoint(market_status)
    symbols = Endpoint(symbols)
    exchanges = Endpoint(exchanges)
    bundle = Endpoint(bundle)
    candles = Endpoint(candles)
    track_record = Endpoint(track_record)
    track_record_runs = Endpoint(track_record_runs)
    symbol_track_record = Endpoint(symbol_track_record)
    pairlist = Endpoint(pairlist)
    stream = StreamEndpoint(stream)
