"""``analyse`` on the bundled real Binance history: ranking, errors, levels, market status, purity and speed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from functools import reduce

import numpy as np
import pytest

from app.analysis import AnalysisError, analyse
from app.analysis import indicators as ind
from app.analysis.levels import SWING_K, swing_candidates
from app.analysis.market import sentiment_for, trend_for
from app.analysis.profile import volume_profile
from app.analysis.recommend import label_for_probability
from app.analysis.symbol_indicators import candle_arrays
from app.domain import AnalysisResult, Candle, Label, Ticker, ms_to_datetime
from tests.support.candles import Universe, bundled_universe

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
LOOKBACK = 500


def run(
    universe: Mapping[str, Mapping[str, Sequence[Candle]]], *, tickers: Mapping[str, Ticker] | None = None
) -> AnalysisResult:
    return analyse(universe, tickers=tickers or {}, analysis_timeframe="1h", levels_timeframe="1d")


@pytest.fixture(scope="module")
def universe() -> Universe:
    return bundled_universe(lookback=LOOKBACK)


@pytest.fixture(scope="module")
def result(universe: Universe) -> AnalysisResult:
    return run(universe)


def seeded_ema(values: Sequence[float], span: int) -> float:
    """Last value of the SMA-seeded EMA, written independently of the code under test."""
    alpha = 2 / (span + 1)
    return reduce(lambda y, x: (1 - alpha) * y + alpha * x, values[span:], sum(values[:span]) / span)


def test_recommendations_ranked_and_scored(result: AnalysisResult) -> None:
    recs = result.recommendations
    assert len(recs) == 33 and not result.errors
    assert [r.rank for r in recs] == list(range(1, 34))
    assert [r.total_score for r in recs] == sorted((r.total_score for r in recs), reverse=True)
    assert list(result.models) == ["1h", "4h", "24h"]
    for r in recs:
        for value in (r.total_score, r.technical_score, r.volume_score, r.volatility_score, r.risk_score):
            assert 0.0 <= value <= 1.0
        assert r.horizon == "1h" and set(r.scores_by_horizon) == {"1h", "4h", "24h"}
        assert r.scores_by_horizon["1h"].score == r.total_score and r.scores_by_horizon["1h"].rank == r.rank
        # no fitted model: the prior weights score, no probability, every label HOLD and the note says why
        assert r.label is Label.HOLD and r.probability_outperform is None
        assert "no model has been fitted" in r.details["labels_note"]
        assert {"rsi", "macd", "macd_signal", "macd_hist", "percent_b", "volume_ratio", "volatility"} <= set(r.details)
        assert r.details["reasons"]
    for name in result.models:
        ranks = sorted(r.scores_by_horizon[name].rank for r in recs)
        assert ranks == list(range(1, 34))
    assert len({r.total_score for r in recs}) > 20  # the scores discriminate between symbols


def test_values_come_from_the_candles(universe: Universe, result: AnalysisResult) -> None:
    btc = next(r for r in result.recommendations if r.symbol == "BTC/USDT")
    candles = universe["BTC/USDT"]["1h"]
    assert btc.current_price == candles[-1].close
    assert btc.price_change_24h == pytest.approx((candles[-1].close / candles[-25].close - 1) * 100, abs=1e-4)
    assert btc.volume_24h == pytest.approx(sum(c.close * c.volume for c in candles[-24:]))
    assert result.data_as_of_ms == candles[-1].open_time_ms + HOUR_MS


def test_tickers_override_change_and_volume(universe: Universe) -> None:
    ticker = Ticker("ETH/USDT", last=1.0, timestamp_ms=0, change_24h_pct=12.5, quote_volume_24h=123.0)
    eth = next(r for r in run(universe, tickers={"ETH/USDT": ticker}).recommendations if r.symbol == "ETH/USDT")
    assert (eth.price_change_24h, eth.volume_24h) == (12.5, 123.0)


@pytest.mark.parametrize(
    ("probability", "label"),
    [
        (1.0, Label.STRONG_BUY),
        (0.56, Label.STRONG_BUY),
        (0.5599, Label.BUY),
        (0.52, Label.BUY),
        (0.5199, Label.HOLD),
        (0.4801, Label.HOLD),
        (0.48, Label.SELL),
        (0.4401, Label.SELL),
        (0.44, Label.STRONG_SELL),
        (0.0, Label.STRONG_SELL),
        (None, Label.HOLD),
        (float("nan"), Label.HOLD),
    ],
)
def test_label_thresholds(probability: float | None, label: Label) -> None:
    assert label_for_probability(probability) is label


def test_bad_symbols_are_reported_not_ranked(universe: Universe) -> None:
    mixed = dict(universe)
    mixed["NEW/USDT"] = {"1h": universe["SOL/USDT"]["1h"][-20:]}
    mixed["BAD/USDT"] = {"1h": list(reversed(universe["SOL/USDT"]["1h"]))}
    mixed["NONE/USDT"] = {}
    result = run(mixed)
    assert set(result.errors) == {"NEW/USDT", "BAD/USDT", "NONE/USDT"}
    assert "too few candles: 20" in result.errors["NEW/USDT"]
    assert "ascending" in result.errors["BAD/USDT"]
    assert {r.symbol for r in result.recommendations} == set(universe) == set(result.levels)
    with pytest.raises(AnalysisError, match="too few candles"):
        run({"NEW/USDT": mixed["NEW/USDT"]})


def test_levels_sit_on_the_right_side(result: AnalysisResult) -> None:
    prices = {r.symbol: r.current_price for r in result.recommendations}
    for symbol, lv in result.levels.items():
        assert lv.calculation_method == "levels_1d" and lv.data_points_count > 30
        close = prices[symbol]
        for level in lv.levels:
            assert (level.price < close) == (level.kind == "support")
            assert 0.0 <= level.strength <= 1.0 and level.sources
            if level.touches:
                assert level.last_touched_at is not None and level.last_touched_at.tzinfo is not None
            else:
                assert level.last_touched_at is None and not any(s.startswith("swing") for s in level.sources)
        supports = [x for x in (lv.aggressive_support, lv.moderate_support, lv.conservative_support) if x is not None]
        resistances = [
            x for x in (lv.aggressive_resistance, lv.moderate_resistance, lv.conservative_resistance) if x is not None
        ]
        assert all(s < close for s in supports) and all(r >= close for r in resistances)
        assert supports == sorted(supports, reverse=True) and resistances == sorted(resistances)
    btc = result.levels["BTC/USDT"]
    assert btc.aggressive_support is not None and btc.moderate_support is not None
    assert btc.aggressive_support >= btc.moderate_support


def test_levels_serve_the_last_closed_days_pivots_and_the_series_profile(
    universe: Universe, result: AnalysisResult
) -> None:
    for symbol in ("BTC/USDT", "ETH/USDT"):
        served, daily = result.levels[symbol], universe[symbol]["1d"]
        closed = [c for c in daily if c.open_time_ms + DAY_MS <= result.data_as_of_ms]
        day = closed[-1]
        assert day.open_time_ms == (result.data_as_of_ms // DAY_MS - 1) * DAY_MS  # the UTC day before as_of's
        pivots, profile = served.pivots, served.volume_profile
        assert pivots is not None and profile is not None
        p = (day.high + day.low + day.close) / 3
        assert (pivots.period_start, pivots.high, pivots.low, pivots.close) == (
            ms_to_datetime(day.open_time_ms),
            day.high,
            day.low,
            day.close,
        )
        assert [pivots.pivot, pivots.r1, pivots.s1] == pytest.approx([p, 2 * p - day.low, 2 * p - day.high])
        arrays = candle_arrays(daily[-served.data_points_count :])
        expected = volume_profile(arrays.high, arrays.low, arrays.close, arrays.volume)
        assert (profile.poc, profile.value_area_high, profile.value_area_low) == expected
        assert min(c.low for c in daily) < profile.value_area_low <= profile.poc <= profile.value_area_high
        assert any("volume_poc" in level.sources for level in served.levels)  # the POC is also a merged candidate


def test_levels_fall_back_to_the_analysis_timeframe(universe: Universe) -> None:
    short = {**universe, "ADA/USDT": {"1h": universe["ADA/USDT"]["1h"], "1d": universe["ADA/USDT"]["1d"][-10:]}}
    levels = run(short).levels["ADA/USDT"]
    assert levels.calculation_method == "levels_1h_fallback"
    assert levels.data_points_count == LOOKBACK


def test_level_swings_are_confirmed_and_survive_appended_candles(universe: Universe) -> None:
    candles = universe["ETH/USDT"]["1h"]
    arrays = candle_arrays(candles)
    full = swing_candidates(arrays, tolerance=0.0)  # zero tolerance: one cluster per swing price
    points = ind.swing_points(arrays.high, arrays.low, k=SWING_K)
    for n in (100, 250, 499):
        prefix = swing_candidates(candle_arrays(candles[:n]), tolerance=0.0)
        last_confirmed = n - 1 - SWING_K  # a swing needs k more bars
        confirmed = np.count_nonzero(points.lows <= last_confirmed) + np.count_nonzero(points.highs <= last_confirmed)
        assert int(prefix.touches.sum()) == confirmed > 0  # every swing confirmed by then, and no other
        assert int(prefix.last_index.max()) <= last_confirmed
        assert all(np.isclose(full.price, price, rtol=1e-12).any() for price in prefix.price)  # no repainting


def test_no_state_between_calls(universe: Universe) -> None:
    prefix = {s: {tf: c[: len(c) - 60] for tf, c in by_tf.items()} for s, by_tf in universe.items()}
    before = run(prefix)
    run(universe)
    after = run(prefix)
    assert before == after
    reordered = run(dict(reversed(list(prefix.items()))))
    assert reordered == before
    assert before.data_as_of_ms == universe["BTC/USDT"]["1h"][-61].open_time_ms + HOUR_MS


def test_market_status_on_real_data(universe: Universe, result: AnalysisResult) -> None:
    market = result.market
    closes = {s: [c.close for c in by_tf["1h"]] for s, by_tf in universe.items()}
    btc = closes["BTC/USDT"]
    fast, slow, fast_5_ago = seeded_ema(btc, 20), seeded_ema(btc, 50), seeded_ema(btc[:-5], 20)
    trend = market.details["benchmark_trend"]
    if fast > slow and fast > fast_5_ago:
        assert trend == "bullish"
    elif fast < slow and fast < fast_5_ago:
        assert trend == "bearish"
    else:
        assert trend == "neutral"
    above = sum(c[-1] > seeded_ema(c, 20) for c in closes.values())
    assert market.details["breadth_ema20"] == pytest.approx(above / 33, abs=1e-4)
    index = market.details["sentiment_index"]
    weights, components = market.details["weights"], market.details["components"]
    assert index == pytest.approx(sum(weights[k] * components[k] for k in weights), abs=0.02)
    assert market.market_trend == trend_for(index) and market.overall_score == pytest.approx(index / 100, abs=1e-4)
    changes = {s: (c[-1] / c[-25] - 1) * 100 for s, c in closes.items()}
    assert market.active_coins_count == 33
    assert market.analysis_summary["decliners"] == sum(v < 0 for v in changes.values())
    assert market.analysis_summary["top_losers"] == sum(v < -3 for v in changes.values())
    assert market.analysis_summary["stable_coins"] == sum(abs(v) < 1 for v in changes.values())
    assert [s for s, _ in market.top_losers] == sorted(changes, key=changes.__getitem__)[:5]
    assert all(change > 0 for _, change in market.top_gainers)
    assert 0.0 <= market.overall_score <= 1.0 and market.market_sentiment == sentiment_for(index)
    assert market.total_volume_24h == pytest.approx(sum(r.volume_24h for r in result.recommendations))
    assert 0.05 < market.average_volatility < 5.0  # percent per hourly candle


def test_benchmark_missing_uses_most_traded(universe: Universe) -> None:
    without_btc = {s: v for s, v in universe.items() if s != "BTC/USDT"}
    result = run(without_btc)
    most_traded = max(result.recommendations, key=lambda r: r.volume_24h).symbol
    assert result.market.details["benchmark"] == most_traded


def test_hundred_symbols_are_all_ranked(universe: Universe) -> None:
    """A 100-symbol universe is analysed whole (its speed is measured by `dantaro benchmark analysis`)."""
    copies = [(f"{symbol.split('/')[0]}{copy}/USDT", by_tf) for copy in range(4) for symbol, by_tf in universe.items()]
    big = dict(copies[:100])
    result = run(big)
    assert len(result.recommendations) == 100
    assert [r.rank for r in result.recommendations] == list(range(1, 101))


def test_results_are_frozen(result: AnalysisResult) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.recommendations[0].rank = 5  # type: ignore[misc]
