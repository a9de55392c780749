"""Error translation at the exchange boundary, closed-candle filtering, and the source factory."""

from __future__ import annotations

from datetime import UTC, datetime

import ccxt
import pytest

from app.config import Settings
from app.domain import Candle
from app.exchange import (
    CcxtSource,
    ExchangeError,
    ExchangeUnavailable,
    RateLimited,
    ReplaySource,
    SymbolNotFound,
    build_source,
    closed_only,
    translate_ccxt_error,
)
from app.exchange.errors import retry_after_from_headers
from app.exchange.source import window

HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    ("ccxt_error", "ours"),
    [
        (ccxt.RateLimitExceeded, RateLimited),
        (ccxt.DDoSProtection, RateLimited),
        (ccxt.RequestTimeout, ExchangeUnavailable),
        (ccxt.ExchangeNotAvailable, ExchangeUnavailable),
        (ccxt.OnMaintenance, ExchangeUnavailable),
        (ccxt.NetworkError, ExchangeUnavailable),
        (ccxt.BadSymbol, SymbolNotFound),
        (ccxt.AuthenticationError, ExchangeError),
        (ccxt.ExchangeError, ExchangeError),
        (TimeoutError, ExchangeUnavailable),
    ],
)
def test_ccxt_errors_map_to_our_types(ccxt_error: type[Exception], ours: type[ExchangeError]) -> None:
    translated = translate_ccxt_error(ccxt_error("upbit GET https://api.upbit.com/v1/ticker 500"))
    assert type(translated) is ours
    assert "api.upbit.com/v1/ticker" in str(translated)


def test_messages_are_redacted_and_bounded() -> None:
    exc = ccxt.AuthenticationError(
        "binance GET https://api.binance.com/api/v3/account?timestamp=1&signature=abc123def "
        "Authorization: Bearer eyJhbGciOi.payload.sig key=SECRETKEY " + "x" * 2000
    )
    message = str(translate_ccxt_error(exc, secrets=["SECRETKEY"]))
    assert "abc123def" not in message and "SECRETKEY" not in message and "eyJhbGciOi" not in message
    assert "signature=***" in message and len(message) < 600


def test_rate_limited_carries_retry_after() -> None:
    error = translate_ccxt_error(ccxt.RateLimitExceeded("429"), retry_after_s=2.5)
    assert isinstance(error, RateLimited) and error.retry_after_s == 2.5


def test_retry_after_header_forms() -> None:
    now = datetime(2022, 10, 11, 10, 30, tzinfo=UTC)
    assert retry_after_from_headers({"retry-after": "7"}) == 7.0
    assert retry_after_from_headers({"Retry-After": "Tue, 11 Oct 2022 10:30:42 GMT"}, now=now) == 42.0
    assert retry_after_from_headers({"Retry-After": "soon"}) is None
    assert retry_after_from_headers({}) is None and retry_after_from_headers(None) is None


def candle(open_ms: int, close: float) -> Candle:
    return Candle(open_time_ms=open_ms, open=close, high=close, low=close, close=close, volume=1.0)


def test_closed_only_drops_forming_dedups_and_sorts() -> None:
    candles = [candle(3 * HOUR_MS, 3), candle(HOUR_MS, 1), candle(2 * HOUR_MS, 2), candle(HOUR_MS, 1.5)]
    result = closed_only(candles, timeframe="1h", now_ms=3 * HOUR_MS + 1)
    assert result == [candle(HOUR_MS, 1.5), candle(2 * HOUR_MS, 2)]
    assert closed_only(candles, timeframe="1h", now_ms=4 * HOUR_MS)[-1] == candle(3 * HOUR_MS, 3)


def test_window_takes_oldest_from_since_or_newest() -> None:
    candles = [candle(i * HOUR_MS, i) for i in range(10)]
    assert window(candles, since_ms=None, limit=3) == candles[-3:]
    assert window(candles, since_ms=4 * HOUR_MS, limit=2) == candles[4:6]
    assert window(candles, since_ms=None, limit=0) == []


async def test_build_source_replay_steps_by_the_smallest_timeframe() -> None:
    settings = Settings(_env_file=None, market_source="replay", timeframes=["1d", "1h"], replay_warmup_candles=5)
    source = build_source(settings, "binance", resume_from_ms=None)
    assert isinstance(source, ReplaySource)
    assert (source.exchange_id, source.quote) == ("binance", "USDT")
    first_ms = await source.start_cycle()
    assert await source.start_cycle() - first_ms == HOUR_MS
    await source.close()


async def test_build_source_ccxt_uses_quote_and_options() -> None:
    settings = Settings(
        _env_file=None,
        market_source="ccxt",
        exchanges=["upbit"],
        exchange_options={"upbit": {"timeout": 5000}},
    )
    source = build_source(settings, "upbit", resume_from_ms=None)
    assert isinstance(source, CcxtSource)
    assert (source.exchange_id, source.quote) == ("upbit", "KRW")
    await source.close()


def test_unknown_exchange_or_timeframe_is_refused() -> None:
    with pytest.raises(ExchangeError):
        CcxtSource("no-such-exchange", quote="USDT")
    with pytest.raises(ExchangeError):
        CcxtSource("upbit", quote="KRW", timeframes=["7m"])
