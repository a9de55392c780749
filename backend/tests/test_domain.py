"""Pure domain helpers: timeframes and the symbol spellings users send."""

from __future__ import annotations

import pytest

from app.domain import symbol_candidates, timeframe_ms


@pytest.mark.parametrize(
    ("timeframe", "expected_ms"),
    [("1m", 60_000), ("15m", 900_000), ("1h", 3_600_000), ("4h", 14_400_000), ("1d", 86_400_000), ("1w", 604_800_000)],
)
def test_timeframe_ms(timeframe: str, expected_ms: int) -> None:
    assert timeframe_ms(timeframe) == expected_ms


@pytest.mark.parametrize("timeframe", ["", "h", "1y", "1 h", "-1h"])
def test_timeframe_ms_rejects_unknown(timeframe: str) -> None:
    with pytest.raises(ValueError, match="unknown timeframe"):
        timeframe_ms(timeframe)


@pytest.mark.parametrize(
    ("text", "quote", "first"),
    [
        ("BTC", "KRW", "BTC/KRW"),
        ("btc", "USDT", "BTC/USDT"),
        ("BTC-KRW", "KRW", "BTC/KRW"),
        ("BTC_KRW", "KRW", "BTC/KRW"),
        ("KRW-BTC", "KRW", "BTC/KRW"),  # Upbit's QUOTE-BASE spelling
        ("ETH-BTC", "KRW", "ETH/BTC"),
        ("USDT-ETH", "USDT", "ETH/USDT"),
        ("BTC/USDT", "KRW", "BTC/USDT"),
    ],
)
def test_symbol_candidates(text: str, quote: str, first: str) -> None:
    candidates = symbol_candidates(text, default_quote=quote)
    assert candidates[0] == first


def test_dash_pairs_offer_both_orders() -> None:
    assert set(symbol_candidates("KRW-BTC", default_quote="KRW")) == {"BTC/KRW", "KRW/BTC"}


@pytest.mark.parametrize("text", ["", "BTC/USDT/X", "B TC", "BTC;DROP", "A" * 21])
def test_symbol_candidates_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="not a symbol"):
        symbol_candidates(text, default_quote="USDT")
