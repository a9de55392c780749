"""CcxtSource against the real ccxt exchange classes, fed recorded responses in each exchange's own JSON shape.

Only the socket is replaced: the fakes below override ccxt's low-level ``fetch`` and then do what ccxt's own
``fetch`` does with a response (``handle_errors``, ``handle_http_status_code``), so request building, parsing,
ordering and error mapping are ccxt's real code. Fixtures: ``fixtures/exchange`` (see its README).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt.async_support as ccxt_async
import pytest
from structlog.testing import capture_logs

from app.domain import Candle, Market
from app.exchange import CcxtSource, ExchangeUnavailable, RateLimited, RetryPolicy

FIXTURES = Path(__file__).parents[1] / "fixtures" / "exchange"
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
NOW_MS: int = json.loads((FIXTURES / "server_now.json").read_text())["now_ms"]
SECRET_OPTIONS = {"apiKey": "key-do-not-log-123", "secret": "secret-do-not-log-456"}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Reply:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def ok(payload: Any) -> Reply:
    return Reply(200, json.dumps(payload), {"Content-Type": "application/json"})


Route = Callable[[dict[str, str]], Reply]


class RecordedHttp:
    """ccxt's async ``fetch`` with the network replaced by routes keyed by URL path."""

    def __init__(self, config: dict[str, Any], routes: dict[str, Route]) -> None:
        super().__init__(config)  # type: ignore[call-arg]
        self.config = config
        self.routes = routes
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.failures: list[Reply] = []  # served first, in order
        self.closed = False

    async def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.requests.append((parts.path, query))
        route = self.routes.get(parts.path)
        reply = self.failures.pop(0) if self.failures else route(query) if route else Reply(404, "Not Found")
        ex: Any = self
        text = ex.on_rest_response(reply.status, "", url, method, reply.headers, reply.body, headers, body)
        parsed = ex.parse_json(text)
        ex.last_response_headers = reply.headers
        ex.handle_errors(reply.status, "", url, method, reply.headers, text, parsed, headers, body)
        ex.handle_http_status_code(reply.status, "", url, method, text)
        return parsed

    async def close(self) -> None:
        self.closed = True
        await super().close()  # type: ignore[misc]


class FakeUpbit(RecordedHttp, ccxt_async.upbit):  # type: ignore[misc]
    pass


class FakeBinance(RecordedHttp, ccxt_async.binance):  # type: ignore[misc]
    pass


def upbit_candles(newest_first: list[dict[str, Any]], counts: list[int]) -> Route:
    """Upbit's candle endpoint: newest first, at most 200, strictly before ``to`` when given."""

    def serve(query: dict[str, str]) -> Reply:
        count = int(query.get("count", "200"))
        counts.append(count)
        to_ms = upbit_ms(query["to"]) if "to" in query else None
        rows = [c for c in newest_first if query["market"] == c["market"]]
        rows = [c for c in rows if to_ms is None or upbit_ms(c["candle_date_time_utc"]) < to_ms]
        return ok(rows[: min(count, 200)])

    return serve


def upbit_ms(text: str) -> int:
    moment = datetime.fromisoformat(text if text.endswith("Z") or "+" in text else text + "Z")
    return int(moment.timestamp() * 1000)


def upbit_routes(counts: list[int]) -> dict[str, Route]:
    tickers = fixture("upbit/ticker.json")
    return {
        "/v1/market/all": lambda q: ok(fixture("upbit/market_all.json")),
        "/v1/ticker": lambda q: ok([t for t in tickers if t["market"] in q["markets"].split(",")]),
        "/v1/candles/minutes/60": upbit_candles(fixture("upbit/candles_minutes_60.json"), counts),
        "/v1/candles/days": upbit_candles(fixture("upbit/candles_days.json"), counts),
    }


def binance_klines(query: dict[str, str]) -> Reply:
    rows = [k for k in fixture("binance/klines_BTCUSDT_1h.json") if query["symbol"] == "BTCUSDT"]
    limit = min(int(query.get("limit", "500")), 1000)
    if "startTime" not in query:
        return ok(rows[-limit:])
    end_ms = int(query.get("endTime", str(2**62)))
    return ok([k for k in rows if int(query["startTime"]) <= k[0] <= end_ms][:limit])


def binance_routes() -> dict[str, Route]:
    tickers = fixture("binance/ticker_24hr.json")
    return {
        "/api/v3/exchangeInfo": lambda q: ok(fixture("binance/exchangeInfo.json")),
        "/api/v3/ticker/24hr": lambda q: ok([t for t in tickers if t["symbol"] in json.loads(q["symbols"])]),
        "/api/v3/klines": binance_klines,
    }


def make_source(
    fake: type[RecordedHttp], routes: dict[str, Route], exchange_id: str, quote: str, options: dict[str, Any]
) -> tuple[CcxtSource, RecordedHttp]:
    made: list[RecordedHttp] = []

    def factory(config: dict[str, Any]) -> RecordedHttp:
        made.append(fake(config, routes))
        return made[0]

    source = CcxtSource(
        exchange_id,
        quote=quote,
        options=options,
        timeframes=["1h", "1d"],
        exchange_factory=factory,
        retry_policy=RetryPolicy(max_attempts=1),  # errors surface on the first failure here; see test_exchange_retry
    )
    return source, made[0]


@pytest.fixture
async def upbit() -> Any:
    counts: list[int] = []
    source, fake = make_source(FakeUpbit, upbit_routes(counts), "upbit", "KRW", dict(SECRET_OPTIONS))
    yield source, fake, counts
    await source.close()


@pytest.fixture
async def binance() -> Any:
    source, fake = make_source(FakeBinance, binance_routes(), "binance", "USDT", dict(SECRET_OPTIONS))
    yield source, fake
    await source.close()


def upbit_candle(raw: dict[str, Any]) -> Candle:
    return Candle(
        open_time_ms=upbit_ms(raw["candle_date_time_utc"]),
        open=raw["opening_price"],
        high=raw["high_price"],
        low=raw["low_price"],
        close=raw["trade_price"],
        volume=raw["candle_acc_trade_volume"],
    )


async def test_upbit_markets_are_the_krw_spot_markets(upbit: Any) -> None:
    source, _, _ = upbit
    markets = await source.load_markets()
    assert markets == [
        Market("BTC/KRW", "BTC", "KRW"),
        Market("ETH/KRW", "ETH", "KRW"),
        Market("XRP/KRW", "XRP", "KRW"),
    ]


async def test_upbit_tickers_parse_upbit_fields_and_skip_unknown_symbols(upbit: Any) -> None:
    source, fake, _ = upbit
    tickers = await source.fetch_tickers(["BTC/KRW", "XRP/KRW", "DOGE/KRW"])
    assert set(tickers) == {"BTC/KRW", "XRP/KRW"}
    raw = next(t for t in fixture("upbit/ticker.json") if t["market"] == "KRW-BTC")
    btc = tickers["BTC/KRW"]
    assert btc.last == raw["trade_price"]
    assert btc.timestamp_ms == raw["trade_timestamp"]
    assert btc.quote_volume_24h == pytest.approx(raw["acc_trade_price_24h"])
    assert btc.base_volume_24h == pytest.approx(raw["acc_trade_volume_24h"])
    opening = raw["opening_price"]  # ccxt derives Upbit's percentage from the day's opening price
    assert btc.change_24h_pct == pytest.approx((raw["trade_price"] - opening) / opening * 100)
    assert ("/v1/ticker", {"markets": "KRW-BTC,KRW-XRP"}) in fake.requests


async def test_upbit_hourly_candles_paginate_past_200_oldest_first_closed_only(upbit: Any) -> None:
    source, _, counts = upbit
    candles = await source.fetch_closed_candles("BTC/KRW", "1h", since_ms=None, limit=230, now_ms=NOW_MS)
    expected = sorted((upbit_candle(c) for c in fixture("upbit/candles_minutes_60.json")), key=lambda c: c.open_time_ms)
    forming = expected.pop()
    assert forming.open_time_ms + HOUR_MS > NOW_MS >= forming.open_time_ms
    assert candles == expected[-230:]
    assert len(counts) >= 2 and max(counts) <= 200


async def test_upbit_since_fetches_forward_to_now(upbit: Any) -> None:
    source, _, counts = upbit
    oldest = min(upbit_ms(c["candle_date_time_utc"]) for c in fixture("upbit/candles_minutes_60.json"))
    since_ms = oldest + 5 * HOUR_MS
    candles = await source.fetch_closed_candles("BTC/KRW", "1h", since_ms=since_ms, limit=1000, now_ms=NOW_MS)
    opens = [c.open_time_ms for c in candles]
    assert opens == list(range(since_ms, NOW_MS - HOUR_MS, HOUR_MS))
    assert max(counts) <= 200
    first_two = await source.fetch_closed_candles("BTC/KRW", "1h", since_ms=since_ms, limit=2, now_ms=NOW_MS)
    assert first_two == candles[:2]


async def test_upbit_daily_candles_drop_the_forming_day(upbit: Any) -> None:
    source, _, _ = upbit
    candles = await source.fetch_closed_candles("BTC/KRW", "1d", since_ms=None, limit=30, now_ms=NOW_MS)
    expected = sorted((upbit_candle(c) for c in fixture("upbit/candles_days.json")), key=lambda c: c.open_time_ms)
    assert candles == expected[-31:-1]
    assert candles[-1].open_time_ms == NOW_MS // DAY_MS * DAY_MS - DAY_MS


async def test_upbit_http_errors_become_our_errors_without_secrets(upbit: Any) -> None:
    source, fake, _ = upbit
    fake.failures.append(Reply(429, "Too many API requests.", {"Retry-After": "3"}))
    with pytest.raises(RateLimited) as limited:
        await source.load_markets()
    assert limited.value.retry_after_s == 3.0
    fake.failures.append(Reply(503, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"))
    with pytest.raises(ExchangeUnavailable) as unavailable:
        await source.fetch_closed_candles("BTC/KRW", "1h", since_ms=None, limit=5, now_ms=NOW_MS)
    for message in (str(limited.value), str(unavailable.value)):
        assert all(secret not in message for secret in SECRET_OPTIONS.values())


async def test_options_are_deep_merged_and_only_their_keys_logged() -> None:
    options = {"urls": {"api": {"public": "http://127.0.0.1:9999"}}, "timeout": 5000, **SECRET_OPTIONS}
    with capture_logs() as logs:
        source, fake = make_source(FakeUpbit, {}, "upbit", "KRW", options)
        await source.close()
    ex: Any = fake
    assert ex.urls["api"] == {"public": "http://127.0.0.1:9999", "private": "https://{hostname}"}
    assert ex.timeout == 5000 and ex.enableRateLimit is True
    assert fake.closed
    assert all(secret not in repr(logs) for secret in SECRET_OPTIONS.values())
    assert {"event": "ccxt_source_created", "option_keys": sorted(options)}.items() <= logs[0].items()


async def test_binance_markets_load_spot_only_and_keep_active_usdt(binance: Any) -> None:
    source, fake = binance
    markets = await source.load_markets()
    assert [m.symbol for m in markets] == ["BTC/USDT", "ETH/USDT", "XRP/USDT"]  # ETH/BTC other quote, FTT halted
    assert [path for path, _ in fake.requests] == ["/api/v3/exchangeInfo"]


async def test_binance_tickers_parse_24hr_fields(binance: Any) -> None:
    source, _ = binance
    tickers = await source.fetch_tickers(["BTC/USDT", "ETH/USDT"])
    raw = fixture("binance/ticker_24hr.json")[0]
    btc = tickers["BTC/USDT"]
    assert (btc.last, btc.timestamp_ms) == (float(raw["lastPrice"]), raw["closeTime"])
    assert btc.change_24h_pct == float(raw["priceChangePercent"])
    assert btc.quote_volume_24h == float(raw["quoteVolume"]) and btc.base_volume_24h == float(raw["volume"])


async def test_binance_candles_are_the_bundled_closed_candles(binance: Any) -> None:
    import gzip

    source, _ = binance
    candles = await source.fetch_closed_candles("BTC/USDT", "1h", since_ms=None, limit=24, now_ms=NOW_MS)
    data_file = Path(__file__).parents[2] / "app" / "data" / "binance-spot" / "1h" / "BTC_USDT-1h.json.gz"
    bundled = [Candle(int(r[0]), *r[1:6]) for r in json.loads(gzip.decompress(data_file.read_bytes()))]
    closed = [c for c in bundled if c.open_time_ms + HOUR_MS <= NOW_MS]
    assert candles == closed[-24:]
    assert candles[-1].open_time_ms + HOUR_MS <= NOW_MS < candles[-1].open_time_ms + 2 * HOUR_MS


async def test_binance_rate_limit_and_outage_are_translated(binance: Any) -> None:
    source, fake = binance
    weight_msg = {
        "code": -1003,
        "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE.",
    }
    fake.failures.append(Reply(429, json.dumps(weight_msg), {"Retry-After": "12"}))
    with pytest.raises(RateLimited) as limited:
        await source.load_markets()
    assert limited.value.retry_after_s == 12.0
    fake.failures.append(Reply(503, "Service Unavailable"))
    with pytest.raises(ExchangeUnavailable):
        await source.load_markets()
