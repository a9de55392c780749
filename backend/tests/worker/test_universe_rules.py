"""Universe selection: active spot markets in the quote currency, ranked by 24h quote volume."""

from __future__ import annotations

import pytest

from app.domain import Market, Ticker
from app.worker.universe import quote_volume, select_universe


def _market(symbol: str, *, active: bool = True, spot: bool = True) -> Market:
    base, quote = symbol.split("/")
    return Market(symbol=symbol, base=base, quote=quote, active=active, spot=spot)


def _ticker(symbol: str, *, quote_volume: float | None, base_volume: float | None = None, last: float = 2.0) -> Ticker:
    return Ticker(symbol=symbol, last=last, timestamp_ms=0, quote_volume_24h=quote_volume, base_volume_24h=base_volume)


@pytest.mark.parametrize(
    ("ticker", "expected"),
    [
        (None, 0.0),
        (_ticker("A/KRW", quote_volume=10.0), 10.0),
        (_ticker("A/KRW", quote_volume=None, base_volume=5.0, last=3.0), 15.0),
        (_ticker("A/KRW", quote_volume=None, base_volume=None), 0.0),
    ],
)
def test_quote_volume(ticker: Ticker | None, expected: float) -> None:
    assert quote_volume(ticker) == expected


def test_select_universe_ranks_filters_and_caps() -> None:
    markets = [
        _market("BTC/KRW"),
        _market("ETH/KRW"),
        _market("XRP/KRW"),
        _market("DOGE/KRW", active=False),
        _market("BTC/USDT"),
        _market("SOL/KRW", spot=False),
    ]
    tickers = {
        "BTC/KRW": _ticker("BTC/KRW", quote_volume=100.0),
        "ETH/KRW": _ticker("ETH/KRW", quote_volume=None, base_volume=100.0, last=3.0),
        "XRP/KRW": _ticker("XRP/KRW", quote_volume=50.0),
        "DOGE/KRW": _ticker("DOGE/KRW", quote_volume=1e9),
        "BTC/USDT": _ticker("BTC/USDT", quote_volume=1e9),
    }
    assert select_universe(markets, tickers, quote="KRW", size=10) == ["ETH/KRW", "BTC/KRW", "XRP/KRW"]
    assert select_universe(markets, tickers, quote="krw", size=2) == ["ETH/KRW", "BTC/KRW"]
