"""CcxtSource against the real ccxt exchange classes, fed recorded responses in each exchange's own JSON shape.

Only the socket is replaced (``tests.support.recorded_ccxt``), so request building, parsing, ordering and error
mapping are ccxt's real code. Fixtures: ``fixtures/exchange`` (see its README).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from app.domain import Market
from app.exchange import BadData, ExchangeUnavailable, RateLimited
from tests.support.candles import bundled_candles
from tests.support.recorded_ccxt import (
    NOW_MS,
    SECRET_OPTIONS,
    FakeBinance,
    FakeUpbit,
    Reply,
    Route,
    fixture,
    make_source,
    ok,
    upbit_candle,
    upbit_ms,
    upbit_shaped_routes,
)

HOUR_MS, DAY_MS = 3_600_000, 86_400_000


def upbit_routes(counts: list[int]) -> dict[str, Route]:
    return upbit_shaped_routes("upbit", counts)


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
    source, _ = binance
    candles = await source.fetch_closed_candles("BTC/USDT", "1h", since_ms=None, limit=24, now_ms=NOW_MS)
    closed = [c for c in bundled_candles("BTC", "1h") if c.open_time_ms + HOUR_MS <= NOW_MS]
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


@pytest.mark.parametrize(("value", "problem"), [("NaN", "close is nan, not a finite number"), ("-3", "close is -3")])
async def test_a_malformed_candle_row_is_bad_data_for_that_call(value: str, problem: str) -> None:
    def klines(query: dict[str, str]) -> Reply:
        rows = json.loads(binance_klines(query).body)
        rows[2][4] = value  # Binance sends numbers as strings; ccxt parses this one to NaN or -3.0
        return ok(rows)

    source, _ = make_source(
        FakeBinance, {**binance_routes(), "/api/v3/klines": klines}, "binance", "USDT", dict(SECRET_OPTIONS)
    )
    try:
        with pytest.raises(BadData, match=f"malformed candle row from the exchange: {problem}"):
            await source.fetch_closed_candles("BTC/USDT", "1h", since_ms=None, limit=24, now_ms=NOW_MS)
    finally:
        await source.close()
