"""CcxtSource for Bithumb (KRW) and OKX (USDT) on the real ccxt classes, fed recorded shapes (``fixtures/exchange``).

Bithumb's ccxt ``fetch_ohlcv`` sends only ``count`` (newest candles); our source adds the page end as ``to`` so
that pagination from ``since`` works. OKX pages newest first between ``before`` and ``after`` (≤ 300 per call;
``history-candles`` ≤ 100) and marks the forming candle ``confirm: "0"``.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.domain import Candle, Market
from tests.support.recorded_ccxt import (
    NOW_MS,
    SECRET_OPTIONS,
    FakeBithumb,
    FakeOkx,
    Route,
    fixture,
    make_source,
    ok,
    upbit_candle,
    upbit_ms,
    upbit_shaped_routes,
)

HOUR_MS, DAY_MS = 3_600_000, 86_400_000


def bithumb_routes(counts: list[int]) -> dict[str, Route]:
    return upbit_shaped_routes("bithumb", counts)


def okx_candles(cap: int) -> Route:
    def serve(query: dict[str, str]) -> Any:
        rows = fixture(f"okx/candles_{query['bar']}.json")["data"]
        after, before = int(query.get("after", 2**62)), int(query.get("before", -1))
        chosen = [r for r in rows if query["instId"] == "BTC-USDT" and before < int(r[0]) < after]
        return ok({"code": "0", "msg": "", "data": chosen[: min(int(query.get("limit", "100")), cap)]})

    return serve


def okx_routes() -> dict[str, Route]:
    return {
        "/api/v5/public/instruments": lambda q: ok(fixture("okx/instruments.json")),
        "/api/v5/market/tickers": lambda q: ok(fixture("okx/tickers.json")),
        "/api/v5/market/candles": okx_candles(300),
        "/api/v5/market/history-candles": okx_candles(100),
    }


@pytest.fixture
async def bithumb() -> Any:
    counts: list[int] = []
    source, fake = make_source(FakeBithumb, bithumb_routes(counts), "bithumb", "KRW", dict(SECRET_OPTIONS))
    yield source, fake, counts
    await source.close()


@pytest.fixture
async def okx() -> Any:
    source, fake = make_source(FakeOkx, okx_routes(), "okx", "USDT", {})
    yield source, fake
    await source.close()


async def test_bithumb_markets_and_tickers(bithumb: Any) -> None:
    source, _, _ = bithumb
    assert await source.load_markets() == [Market(s, s.split("/")[0], "KRW") for s in ("BTC/KRW", "ETH/KRW", "XRP/KRW")]
    tickers = await source.fetch_tickers(["BTC/KRW", "ETH/KRW"])
    raw = next(t for t in fixture("bithumb/ticker.json") if t["market"] == "KRW-BTC")
    assert tickers["BTC/KRW"].last == raw["trade_price"]
    assert tickers["BTC/KRW"].quote_volume_24h == pytest.approx(raw["acc_trade_price_24h"])


@pytest.mark.parametrize(("timeframe", "name", "step_ms"), [("1h", "minutes_60", HOUR_MS), ("1d", "days", DAY_MS)])
async def test_bithumb_candles_paginate_from_since_closed_only(
    bithumb: Any, timeframe: str, name: str, step_ms: int
) -> None:
    source, fake, counts = bithumb
    expected = sorted((upbit_candle(c) for c in fixture(f"bithumb/candles_{name}.json")), key=lambda c: c.open_time_ms)
    assert expected[-1].open_time_ms + step_ms > NOW_MS  # the fixture's last candle is forming
    since_ms = expected[0].open_time_ms
    candles = await source.fetch_closed_candles("BTC/KRW", timeframe, since_ms=since_ms, limit=1000, now_ms=NOW_MS)
    assert candles == expected[:-1]
    assert max(counts) <= 200 and all("to" in query for path, query in fake.requests if "candles" in path)
    newest = await source.fetch_closed_candles("BTC/KRW", timeframe, since_ms=None, limit=5, now_ms=NOW_MS)
    assert newest == expected[-6:-1]


async def test_okx_markets_are_live_usdt_spot_and_tickers_parse(okx: Any) -> None:
    source, _ = okx
    assert [m.symbol for m in await source.load_markets()] == ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
    tickers = await source.fetch_tickers(["BTC/USDT", "XRP/USDT"])
    raw = fixture("okx/tickers.json")["data"][0]
    assert tickers["BTC/USDT"].last == float(raw["last"])
    assert tickers["BTC/USDT"].quote_volume_24h == pytest.approx(float(raw["volCcy24h"]))
    assert tickers["BTC/USDT"].base_volume_24h == pytest.approx(float(raw["vol24h"]))


@pytest.mark.parametrize(
    ("timeframe", "bar", "step_ms", "pages"), [("1h", "1H", HOUR_MS, 3), ("1d", "1Dutc", DAY_MS, 1)]
)
async def test_okx_candles_page_newest_first_and_drop_the_forming_one(
    okx: Any, timeframe: str, bar: str, step_ms: int, pages: int
) -> None:
    source, fake = okx
    rows = fixture(f"okx/candles_{bar}.json")["data"]
    expected = [Candle(int(r[0]), *(float(v) for v in r[1:6])) for r in reversed(rows) if r[8] == "1"]
    since_ms = expected[0].open_time_ms
    candles = await source.fetch_closed_candles("BTC/USDT", timeframe, since_ms=since_ms, limit=1000, now_ms=NOW_MS)
    assert candles == expected
    assert candles[-1].open_time_ms + step_ms <= NOW_MS < candles[-1].open_time_ms + 2 * step_ms
    assert len([p for p, _ in fake.requests if "candles" in p]) == pages  # 300 closed hours: pages of 100


def test_upbit_time_parse_helper_is_shared() -> None:
    assert upbit_ms("2022-10-11T10:00:00") % HOUR_MS == 0
