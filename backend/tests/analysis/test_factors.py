"""Factor model: rank normalisation, the composite, weights, priors, contributions, reasons and the liquidity gate."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from app.analysis import LiquidityGate, analyse
from app.analysis.factors import FACTORS, check_weights, composite, contributions, prior_weights, rank_normalise
from app.analysis.reasons import reasons, standing, unit_word
from app.analysis.symbol_indicators import MOMENTUM_PERIODS, REVERSAL_PERIODS, SymbolIndicators
from app.domain import AnalysisResult, HorizonModel, Label, default_horizons
from tests.support.candles import Universe, bundled_universe

HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def universe() -> Universe:
    return bundled_universe(lookback=300)


@pytest.fixture(scope="module")
def result(universe: Universe) -> AnalysisResult:
    return analyse(universe, tickers={}, analysis_timeframe="1h", levels_timeframe="1d")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([3.0, 1.0, 2.0], [1.0, 0.0, 0.5]),
        ([1.0, 1.0, 2.0, math.nan], [0.25, 0.25, 1.0, math.nan]),
        ([7.0], [0.5]),
        ([math.nan, 4.0], [math.nan, 0.5]),
        ([-math.inf, 2.0, 5.0], [0.0, 0.5, 1.0]),  # no volume at all ranks lowest
    ],
)
def test_rank_normalise(values: list[float], expected: list[float]) -> None:
    np.testing.assert_array_equal(rank_normalise(np.array(values)), expected)


def test_rank_normalise_works_per_row() -> None:
    rows = np.array([[1.0, 2.0, 3.0], [3.0, math.nan, 1.0]])
    np.testing.assert_array_equal(rank_normalise(rows), [[0.0, 0.5, 1.0], [1.0, math.nan, 0.0]])


def test_composite_and_contributions_by_hand() -> None:
    scores = {"rsi": np.array([1.0, 0.0, math.nan]), "drawdown": np.array([0.5, 1.0, 0.0])}
    weights = {"rsi": 3.0, "drawdown": 1.0, "obv": 0.0}
    # 0.5 + (3 (s_rsi - 0.5) + 1 (s_dd - 0.5)) / 4, a missing score counting as 0.5
    np.testing.assert_allclose(composite(scores, weights), [0.875, 0.25, 0.375])
    pulls = contributions({"rsi": 1.0, "drawdown": 0.5, "obv": 0.9}, weights)
    assert pulls == {"rsi": 0.375, "drawdown": 0.0}  # never a zero-weight factor
    assert sum(pulls.values()) == pytest.approx(0.875 - 0.5)


@pytest.mark.parametrize(
    ("weights", "message"),
    [({"moon": 1.0}, "unknown factors ['moon']"), ({"rsi": -0.1}, "non-negative"), ({"rsi": 0.0}, "not all zero")],
)
def test_weights_are_validated(weights: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match="WEIGHTS") as info:
        check_weights(weights, source="WEIGHTS")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("candle_ms", "horizon", "leading"),
    [
        (HOUR_MS, 1, "reversal_1"),
        (HOUR_MS, 4, "reversal_4"),
        (HOUR_MS, 24, "low_volatility_long"),
        (24 * HOUR_MS, 1, "drawdown"),
        (24 * HOUR_MS, 7, "drawdown"),
    ],
)
def test_priors_follow_the_horizon(candle_ms: int, horizon: int, leading: str) -> None:
    prior = prior_weights(candle_ms=candle_ms, horizon_candles=horizon)
    assert sum(prior.values()) == pytest.approx(1.0) and set(prior) == set(FACTORS)
    assert max(prior, key=lambda name: prior[name]) == leading


def test_pinned_weights_rank_by_that_factor(universe: Universe) -> None:
    horizons = default_horizons("1h")
    only_rsi = {h.name: _model(h.name, {"rsi": 1.0}) for h in horizons}
    out = analyse(universe, tickers={}, analysis_timeframe="1h", levels_timeframe="1h", models=only_rsi)
    rsis = [r.details["rsi"] for r in out.recommendations]
    assert rsis == sorted(rsis)  # lowest RSI (most oversold) first
    assert out.recommendations[0].total_score == 1.0 and out.recommendations[-1].total_score == 0.0
    for r in (out.recommendations[0], out.recommendations[-1]):
        assert r.details["reasons"][0].startswith("RSI ")


def _model(
    horizon: str, weights: dict[str, float], *, calibration: tuple[tuple[float, float], ...] = ()
) -> HorizonModel:
    return HorizonModel(
        horizon=horizon,
        candles=1,
        weights=check_weights(weights, source="test"),
        weights_source="configured",
        calibration=calibration,
        calibration_samples=1000 if calibration else 0,
        labels_active=bool(calibration),
    )


def test_calibrated_labels_and_the_liquidity_gate(universe: Universe) -> None:
    knots = ((0.0, 0.40), (1.0, 0.60))  # a steep hand-made calibration: top symbols STRONG_BUY
    models = {h.name: _model(h.name, {"rsi": 1.0}, calibration=knots) for h in default_horizons("1h")}
    free = analyse(universe, tickers={}, analysis_timeframe="1h", levels_timeframe="1h", models=models)
    top, bottom = free.recommendations[0], free.recommendations[-1]
    assert (top.label, top.probability_outperform) == (Label.STRONG_BUY, 0.6)
    assert (bottom.label, bottom.probability_outperform) == (Label.STRONG_SELL, 0.4)
    gated = analyse(
        universe,
        tickers={},
        analysis_timeframe="1h",
        levels_timeframe="1h",
        models=models,
        liquidity=LiquidityGate(min_quote_volume_24h=math.inf),
    )
    assert all(r.label not in (Label.BUY, Label.STRONG_BUY) for r in gated.recommendations)
    top = gated.recommendations[0]
    assert top.details["liquidity_ok"] is False and "below the minimum" in top.details["reasons"][-1]


def test_liquidity_threshold_ignores_unknown_volumes() -> None:
    gate = LiquidityGate(min_share_of_median=0.1)
    assert gate.threshold([1.0, math.nan, 3.0, 5.0]) == pytest.approx(0.3)
    assert gate.threshold([math.nan]) == 0.0


def _metrics(**changes: object) -> SymbolIndicators:
    base: dict[str, object] = {name: 1.0 for name in (f.name for f in dataclasses.fields(SymbolIndicators))}
    base.update(symbol="X/USDT", close_time_ms=0, candles=300, momentum=tuple(0.01 for _ in MOMENTUM_PERIODS))
    base.update(returns=tuple(-0.02 for _ in REVERSAL_PERIODS), close_position=0.1)
    base.update(changes)
    return SymbolIndicators(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "timeframe", "changes", "score", "expected"),
    [
        ("rsi", "1d", {"rsi": 24.2}, 0.95, "RSI 24, among the 10 % most oversold in the universe"),
        ("rsi", "1h", {"rsi": 75.0}, 0.2, "RSI 75, among the 25 % most overbought in the universe"),
        ("volume", "1d", {"volume_ratio": 3.12}, 0.5, "volume 3.1× its 20-day average, near the middle"),
        ("volume", "4h", {"volume_ratio": 2.0}, 0.8, "volume 2.0× its 20-candle (4h) average, among the 25 %"),
        ("reversal_1", "1h", {}, 0.92, "fell 1.98% over the last hour, among the 10 % weakest in the universe"),
        ("reversal_4", "1d", {}, 0.5, "fell 1.98% over the last 4 days"),
        ("low_volatility_long", "1h", {"volatility_long": 0.004}, 0.97, "volatility 0.40% per hour over the last 168"),
        ("close_position", "1h", {}, 0.99, "closed 10% up its last hour's range, among the 10 % closest to their"),
    ],
)
def test_reason_wording(name: str, timeframe: str, changes: dict[str, float], score: float, expected: str) -> None:
    scores = dict.fromkeys(FACTORS, 0.5) | {name: score}
    texts = reasons(_metrics(**changes), scores, {name: 0.1}, timeframe=timeframe, gated=False, gate=0.0)
    assert texts and texts[0].startswith(expected), texts


def test_reasons_follow_the_pull_and_skip_unweighted_or_unknown_factors() -> None:
    scores = dict.fromkeys(FACTORS, 0.5) | {"rsi": 0.9, "drawdown": 0.1, "obv": 1.0}
    pulls = {"rsi": 0.05, "drawdown": -0.2, "obv": 0.0, "macd": 0.01}
    texts = reasons(_metrics(atr=0.0, drawdown=0.01), scores, pulls, timeframe="1h", gated=False, gate=0.0)
    assert texts[0].startswith("1.0% below its 30-hour high") and texts[1].startswith("RSI ")
    assert len(texts) == 2  # obv pulls nothing; macd has no value without an ATR


def test_standing_words() -> None:
    words = {"bullish": "calmest", "bearish": "most volatile"}
    assert [standing(s, **words) for s in (0.95, 0.8, 0.5, 0.2, 0.05)] == [
        "among the 10 % calmest in the universe",
        "among the 25 % calmest in the universe",
        "near the middle of the universe",
        "among the 25 % most volatile in the universe",
        "among the 10 % most volatile in the universe",
    ]


def test_unit_words() -> None:
    assert [unit_word(tf) for tf in ("1h", "1d", "1w", "15m", "4h")] == [
        "hour",
        "day",
        "week",
        "15-minute candle",
        "4-hour candle",
    ]


def test_published_extras_are_plain_json(universe: Universe) -> None:
    short = {s: {tf: c[-40:] for tf, c in by_tf.items()} for s, by_tf in universe.items()}  # NaN-prone warm-up
    for result in (analyse(universe, tickers={}, analysis_timeframe="1h", levels_timeframe="1d"),
                   analyse(short, tickers={}, analysis_timeframe="1h", levels_timeframe="1d")):  # fmt: skip
        payload = {
            "details": [r.details for r in result.recommendations],
            "market": [result.market.details, result.market.analysis_summary],
        }
        json.dumps(payload, allow_nan=False)
