"""What the evaluation holds at t: candles closed by t, resampled complete UTC days, tickers, the cross-section."""

from __future__ import annotations

import pytest

from app.domain import Candle, ticker_from_candles
from app.evaluate.candle_files import DataError
from app.evaluate.replay import check_resample, fit_candles, holding_at, market_data, resample
from tests.support.candles import bundled_candles

HOUR_MS, DAY_MS = 3_600_000, 86_400_000
DAY0 = 19_000 * DAY_MS  # a UTC midnight


def hourly(first_ms: int, count: int, *, skip: tuple[int, ...] = ()) -> list[Candle]:
    """Hand-made hourly candles: close = index + 100, high = close + 1, low = close - 1, volume = index."""
    return [
        Candle(first_ms + i * HOUR_MS, 100.0 + i - 0.5, 101.0 + i, 99.0 + i, 100.0 + i, float(i))
        for i in range(count)
        if i not in skip
    ]


def test_resample_builds_complete_utc_days_only() -> None:
    candles = hourly(DAY0 - 5 * HOUR_MS, 5 + 24 + 24 + 24 + 3, skip=(5 + 24 + 7,))  # partial, full, gap, full, partial
    days = resample(candles, source_ms=HOUR_MS, target_ms=DAY_MS)
    assert [d.open_time_ms for d in days] == [DAY0, DAY0 + 2 * DAY_MS]
    first = days[0]  # hours 5..28 of the input
    assert (first.open, first.high, first.low, first.close) == (104.5, 129.0, 104.0, 128.0)
    assert first.volume == sum(range(5, 29))


def test_resample_refuses_periods_that_do_not_tile_a_day() -> None:
    check_resample(source="1h", target="4h")
    with pytest.raises(DataError, match="cannot be resampled"):
        check_resample(source="1h", target="1w")
    with pytest.raises(DataError, match="cannot be resampled"):
        check_resample(source="2h", target="3h")


def test_holding_reads_only_candles_closed_by_now_and_resampled_days_once_closed() -> None:
    market = market_data(
        {"AAA/USDT": hourly(DAY0, 24 * 3), "BBB/USDT": hourly(DAY0, 24 * 2 + 10)},
        None,
        analysis_timeframe="1h",
        levels_timeframe="1d",
    )
    now_ms = DAY0 + 2 * DAY_MS + 11 * HOUR_MS  # 11:00 on the third day
    held = holding_at(market, now_ms, lookback=30)
    assert set(held.entries) == {"AAA/USDT"}  # BBB's last candle closed at 10:00: no entry price at 11:00
    aaa = held.candles["AAA/USDT"]
    assert len(aaa["1h"]) == 30 and aaa["1h"][-1].open_time_ms + HOUR_MS == now_ms
    assert [d.open_time_ms for d in aaa["1d"]] == [DAY0, DAY0 + DAY_MS]  # the third day has not closed
    assert held.entries["AAA/USDT"] == 2 * 24 + 10
    assert held.tickers["AAA/USDT"] == ticker_from_candles("AAA/USDT", aaa["1h"], step_ms=HOUR_MS, now_ms=now_ms)
    fit = fit_candles(market, DAY0 + DAY_MS, history_candles=1000)
    assert {s: len(c) for s, c in fit.items()} == {"AAA/USDT": 24, "BBB/USDT": 24}


def test_a_ticker_reads_only_the_last_day_so_any_tail_gives_the_same() -> None:
    candles = list(bundled_candles("ETH", "1h")[:300])
    now_ms = candles[-1].open_time_ms + HOUR_MS
    whole = ticker_from_candles("ETH/USDT", candles, step_ms=HOUR_MS, now_ms=now_ms)
    assert whole == ticker_from_candles("ETH/USDT", candles[-25:], step_ms=HOUR_MS, now_ms=now_ms)
    assert whole is not None and whole.change_24h_pct == pytest.approx(
        (candles[-1].close / candles[-25].close - 1) * 100
    )
    assert whole.quote_volume_24h == pytest.approx(sum(c.close * c.volume for c in candles[-24:]))
    assert ticker_from_candles("ETH/USDT", candles[-24:], step_ms=HOUR_MS, now_ms=now_ms).change_24h_pct is None  # type: ignore[union-attr]
    assert ticker_from_candles("ETH/USDT", [], step_ms=HOUR_MS, now_ms=now_ms) is None
