"""Response bodies of the emulated exchanges, in Upbit's and Binance's own JSON shapes (see ``__init__``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from app.domain import timeframe_ms

if TYPE_CHECKING:
    from tests.support.emulator import Emulator, Row

DAY_MS = 86_400_000
BINANCE_INTERVALS = {"1h": "1h", "1d": "1d"}


def last_day(emulator: Emulator, base: str) -> list[Row]:
    """The closed hourly rows of the last 24 hours (the tickers' rolling window)."""
    step_ms = timeframe_ms("1h")
    return [
        r for r in emulator.rows(base, "1h") if emulator.now_ms - DAY_MS <= r[0] and r[0] + step_ms <= emulator.now_ms
    ]


def upbit_route(emulator: Emulator, path: str, query: dict[str, str]) -> Any:
    """Upbit's public API: markets, tickers and candles (newest first, ≤ 200, before ``to``)."""
    from tests.support.emulator import iso, parse_ms

    if path == "/v1/market/all":
        return [{"market": f"KRW-{b}", "korean_name": b, "english_name": b} for b in emulator.bases]
    if path == "/v1/ticker":
        return [upbit_ticker(emulator, market.split("-", 1)[1]) for market in query["markets"].split(",")]
    timeframe = UPBIT_TIMEFRAMES[path]
    base = query["market"].split("-", 1)[1]
    if base not in emulator.bases:
        raise KeyError(query["market"])
    to_ms = parse_ms(query["to"]) if "to" in query else None
    rows = [r for r in emulator.visible(base, timeframe) if to_ms is None or r[0] < to_ms]
    count = min(int(query.get("count", "200")), 200)
    step_ms = timeframe_ms(timeframe)
    return [
        {
            "market": query["market"],
            "candle_date_time_utc": iso(r[0]),
            "candle_date_time_kst": iso(r[0] + 9 * 3_600_000),
            "opening_price": r[1],
            "high_price": r[2],
            "low_price": r[3],
            "trade_price": r[4],
            "timestamp": min(r[0] + step_ms, emulator.now_ms) - 1,
            "candle_acc_trade_price": r[4] * r[5],
            "candle_acc_trade_volume": r[5],
        }
        for r in reversed(rows[-count:])
    ]


UPBIT_TIMEFRAMES = {"/v1/candles/minutes/60": "1h", "/v1/candles/days": "1d"}


def upbit_ticker(emulator: Emulator, base: str) -> dict[str, Any]:
    """Upbit's ``/v1/ticker`` object from the last 24 closed hours."""
    window = last_day(emulator, base)
    last, first = window[-1][4], window[0][1]
    return {
        "market": f"KRW-{base}",
        "trade_price": last,
        "opening_price": first,
        "high_price": max(r[2] for r in window),
        "low_price": min(r[3] for r in window),
        "prev_closing_price": first,
        "signed_change_price": last - first,
        "signed_change_rate": (last - first) / first,
        "acc_trade_price_24h": sum(r[4] * r[5] for r in window),
        "acc_trade_volume_24h": sum(r[5] for r in window),
        "trade_timestamp": emulator.now_ms - 1000,
        "timestamp": emulator.now_ms,
    }


def binance_route(emulator: Emulator, path: str, query: dict[str, str]) -> Any:
    """Binance's public API: exchangeInfo, 24hr tickers and klines (ascending from ``startTime``, ≤ 1000)."""
    by_id = {f"{b}USDT": b for b in emulator.bases}
    if path == "/api/v3/exchangeInfo":
        markets = [binance_market(b) for b in emulator.bases]
        return {"timezone": "UTC", "serverTime": emulator.now_ms, "rateLimits": [], "symbols": markets}
    if path == "/api/v3/ticker/24hr":
        ids = json.loads(query["symbols"]) if "symbols" in query else list(by_id)
        return [binance_ticker(emulator, by_id[i]) for i in ids]
    if path != "/api/v3/klines":
        raise KeyError(path)
    base, timeframe = by_id[query["symbol"]], BINANCE_INTERVALS[query["interval"]]
    rows = emulator.visible(base, timeframe)
    start_ms, end_ms = int(query.get("startTime", "0")), int(query.get("endTime", str(2**62)))
    limit = min(int(query.get("limit", "500")), 1000)
    chosen = [r for r in rows if start_ms <= r[0] <= end_ms]
    chosen = chosen[:limit] if "startTime" in query else chosen[-limit:]
    step_ms = timeframe_ms(timeframe)
    return [[r[0], *(str(v) for v in r[1:6]), r[0] + step_ms - 1, str(r[4] * r[5]), 0, "0", "0", "0"] for r in chosen]


def binance_market(base: str) -> dict[str, Any]:
    """One ``exchangeInfo`` symbol entry (trading spot, USDT quote)."""
    return {
        "symbol": f"{base}USDT",
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": "USDT",
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.00000001", "maxPrice": "1000000.0", "tickSize": "0.00000001"},
            {"filterType": "LOT_SIZE", "minQty": "0.00000001", "maxQty": "9000000.0", "stepSize": "0.00000001"},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
    }


def binance_ticker(emulator: Emulator, base: str) -> dict[str, Any]:
    """Binance's rolling ``/api/v3/ticker/24hr`` object from the last 24 closed hours."""
    window = last_day(emulator, base)
    last, first = window[-1][4], window[0][1]
    volume, quote_volume = sum(r[5] for r in window), sum(r[4] * r[5] for r in window)
    return {
        "symbol": f"{base}USDT",
        "priceChange": f"{last - first:.8f}",
        "priceChangePercent": f"{(last - first) / first * 100:.3f}",
        "lastPrice": f"{last:.8f}",
        "openPrice": f"{first:.8f}",
        "highPrice": f"{max(r[2] for r in window):.8f}",
        "lowPrice": f"{min(r[3] for r in window):.8f}",
        "volume": f"{volume:.8f}",
        "quoteVolume": f"{quote_volume:.8f}",
        "openTime": emulator.now_ms - DAY_MS,
        "closeTime": emulator.now_ms,
    }
