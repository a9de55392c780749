"""Factor model: rank normalisation, weights, composite, confidence, contributions, reasons and the liquidity gate."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from app.analysis import FactorWeights, LiquidityGate, analyse
from app.analysis.factors import DAILY_WEIGHTS, INTRADAY_WEIGHTS, default_weights, rank_normalise
from app.analysis.reasons import reasons, unit_word
from app.analysis.symbol_indicators import MOMENTUM_PERIODS, SymbolIndicators
from app.domain import AnalysisResult, Label
from tests.support.candles import Universe, bundled_universe


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
    ],
)
def test_rank_normalise(values: list[float], expected: list[float]) -> None:
    np.testing.assert_array_equal(rank_normalise(np.array(values)), expected)


@pytest.mark.parametrize("bad", [{"rsi": -0.1}, {"liquidity": math.nan}])
def test_weights_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        FactorWeights(**bad)
    zero = dict.fromkeys(FactorWeights().as_dict(), 0.0)
    with pytest.raises(ValueError):
        FactorWeights(**zero)


def test_composite_contributions_and_confidence(result: AnalysisResult) -> None:
    weights = INTRADAY_WEIGHTS.as_dict()  # the default for hourly candles
    for rec in result.recommendations:
        d = rec.details
        assert d["weights"] == weights
        assert set(d["factor_scores"]) == set(weights) == set(d["contributions"])
        parts = [v for v in d["contributions"].values() if v is not None]
        assert sum(parts) == pytest.approx(rec.total_score, abs=5e-4)
        scores = {k: v for k, v in d["factor_scores"].items() if v is not None}
        expected = sum(weights[k] * v for k, v in scores.items()) / sum(weights[k] for k in scores)
        assert rec.total_score == pytest.approx(expected, abs=1e-4)
        assert 0.0 <= d["confidence"] <= 1.0
        for value in (rec.technical_score, rec.volume_score, rec.volatility_score, rec.risk_score):
            assert 0.0 <= value <= 1.0
    totals = [r.total_score for r in result.recommendations]
    assert totals == sorted(totals, reverse=True)


def test_one_factor_weight_ranks_by_that_factor(universe: Universe) -> None:
    only_rsi = FactorWeights(**{n: (1.0 if n == "rsi" else 0.0) for n in FactorWeights().as_dict()})
    out = analyse(universe, tickers={}, analysis_timeframe="1h", levels_timeframe="1h", weights=only_rsi)
    rsis = [r.details["rsi"] for r in out.recommendations]
    assert rsis == sorted(rsis)  # lowest RSI (most oversold) first
    assert out.recommendations[0].total_score == 1.0 and out.recommendations[-1].total_score == 0.0
    assert out.recommendations[0].label is Label.STRONG_BUY


def test_liquidity_gate_caps_buys_and_says_so(universe: Universe) -> None:
    only_rsi = FactorWeights(**{n: (1.0 if n == "rsi" else 0.0) for n in FactorWeights().as_dict()})
    out = analyse(
        universe,
        tickers={},
        analysis_timeframe="1h",
        levels_timeframe="1h",
        weights=only_rsi,
        liquidity=LiquidityGate(min_quote_volume_24h=math.inf),
    )
    assert all(r.label not in (Label.BUY, Label.STRONG_BUY) for r in out.recommendations)
    top = out.recommendations[0]
    assert top.details["liquidity_ok"] is False and "below the minimum" in top.details["reasons"][-1]


def _metrics(**changes: float) -> SymbolIndicators:
    base = {name: 1.0 for name in (f.name for f in dataclasses.fields(SymbolIndicators))}
    base.update(symbol="X/USDT", close_time_ms=0, candles=300, momentum=tuple(0.01 for _ in MOMENTUM_PERIODS))
    base.update(changes)
    return SymbolIndicators(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("timeframe", "changes", "expected"),
    [
        ("1d", {"rsi": 27.2}, "RSI 27 (oversold)"),
        ("1h", {"rsi": 75.0}, "RSI 75 (overbought)"),
        ("1d", {"volume_ratio": 3.12}, "volume 3.1× its 20-day average"),
        ("1h", {"volume_ratio": 0.5}, "volume 0.5× its 20-hour average"),
        ("4h", {"volume_ratio": 2.0}, "volume 2.0× its 20-candle (4h) average"),
    ],
)
def test_reason_wording(timeframe: str, changes: dict[str, float], expected: str) -> None:
    scores = dict.fromkeys(FactorWeights().as_dict(), 0.5)
    texts = reasons(_metrics(**changes), scores, timeframe=timeframe, gated=False, gate=0.0)
    assert any(text.startswith(expected) for text in texts), texts


def test_unit_words() -> None:
    assert [unit_word(tf) for tf in ("1h", "1d", "1w", "15m", "4h")] == [
        "hour",
        "day",
        "week",
        "15-minute candle",
        "4-hour candle",
    ]


def test_default_weights_by_candle_length() -> None:
    assert default_weights(3_600_000) is INTRADAY_WEIGHTS
    assert default_weights(86_400_000) is DAILY_WEIGHTS and FactorWeights() == DAILY_WEIGHTS


def test_published_extras_are_plain_json(universe: Universe) -> None:
    short = {s: {tf: c[-40:] for tf, c in by_tf.items()} for s, by_tf in universe.items()}  # NaN-prone warm-up
    for result in (analyse(universe, tickers={}, analysis_timeframe="1h", levels_timeframe="1d"),
                   analyse(short, tickers={}, analysis_timeframe="1h", levels_timeframe="1d")):  # fmt: skip
        payload = {
            "details": [r.details for r in result.recommendations],
            "market": [result.market.details, result.market.analysis_summary],
        }
        json.dumps(payload, allow_nan=False)
