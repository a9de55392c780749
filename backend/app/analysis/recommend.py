"""Recommendations: the cross-sectional factor composite, labels, confidence, reasons and ranking.

Definitions (docs/analysis.md has the full table; every score is in [0, 1], rounded to 4 decimals):
- total_score = the weighted composite of the rank-normalised factors (``app.analysis.factors``).
- technical_score = the same weighted mean restricted to the technical factors (RSI, Bollinger, MACD, momentum,
  trend); volume_score = restricted to the volume factors (volume z-score, OBV trend).
- volatility_score (absolute, not ranked): moderate volatility is best. With sigma the per-candle log-return std and
  target = 4 % * sqrt(timeframe / 1 day), volatility_score = exp(-ln(sigma / target)^2 / (2 ln(2)^2)).
- risk_score (absolute, higher = riskier) = 0.5 * d / (d + 0.05) + 0.5 * sigma / (sigma + target), d the drawdown
  from the 30-candle high.
- Labels by total_score: >= 0.70 STRONG_BUY, >= 0.60 BUY, > 0.40 HOLD, > 0.30 SELL, else STRONG_SELL. The
  liquidity gate caps a symbol below the minimum quote volume at HOLD (a reason says so).
- confidence = agreement * quality: agreement = 1 - 2 * weighted std of the available factor scores (0 when they
  disagree as much as possible, 1 when all equal); quality = share of the factor weight available * history
  coverage (candles / 200, at most 1) * universe coverage (universe size / 10, at most 1).
- Ranking: total_score descending, ties by symbol; ranks are 1..n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.analysis.factors import (
    TECHNICAL_FACTORS,
    VOLUME_FACTORS,
    FactorWeights,
    default_weights,
    factor_scores,
    weighted_mean,
)
from app.analysis.reasons import reasons
from app.analysis.symbol_indicators import DAY_MS, SymbolIndicators
from app.domain import Label, Recommendation, timeframe_ms

TARGET_DAILY_VOLATILITY = 0.04
VOLATILITY_WIDTH = math.log(2.0)
DRAWDOWN_REFERENCE = 0.05
STRONG_BUY_MIN, BUY_MIN, HOLD_ABOVE, SELL_ABOVE = 0.70, 0.60, 0.40, 0.30
SCORE_DECIMALS = 4
FULL_HISTORY_CANDLES = 200
FULL_UNIVERSE = 10


@dataclass(frozen=True, slots=True)
class LiquidityGate:
    """Minimum 24h quote volume for a BUY/STRONG_BUY: the larger of an absolute floor and a share of the median."""

    min_quote_volume_24h: float = 0.0
    min_share_of_median: float = 0.05

    def threshold(self, volumes: Sequence[float]) -> float:
        """The minimum quote volume for this universe."""
        median = float(np.median(volumes)) if volumes else 0.0
        return max(self.min_quote_volume_24h, self.min_share_of_median * median)


@dataclass(frozen=True, slots=True)
class ScoreCard:
    """The component scores, the total and the confidence of one symbol, each in [0, 1]."""

    technical: float
    volume: float
    volatility: float
    risk: float
    total: float
    confidence: float


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value))


def target_volatility(timeframe: str) -> float:
    """The per-candle log-return std that scores best: 4 % a day scaled by sqrt(candle length / 1 day)."""
    return TARGET_DAILY_VOLATILITY * math.sqrt(timeframe_ms(timeframe) / DAY_MS)


def volatility_score(sigma: float, *, target: float) -> float:
    """Log-normal bell around ``target``: 1 at the target, 0 for no movement at all (or unknown)."""
    if not sigma > 0:
        return 0.0
    return math.exp(-(math.log(sigma / target) ** 2) / (2.0 * VOLATILITY_WIDTH**2))


def risk_score(*, drawdown: float, sigma: float, target: float) -> float:
    """Half drawdown from the recent high, half volatility, each mapped x / (x + reference)."""
    drawdown = max(0.0, drawdown) if math.isfinite(drawdown) else 0.0
    sigma = sigma if math.isfinite(sigma) else target
    return _clip01(0.5 * drawdown / (drawdown + DRAWDOWN_REFERENCE) + 0.5 * sigma / (sigma + target))


def label_for(total_score: float) -> Label:
    """The label the thresholds give a total score."""
    if total_score >= STRONG_BUY_MIN:
        return Label.STRONG_BUY
    if total_score >= BUY_MIN:
        return Label.BUY
    if total_score > HOLD_ABOVE:
        return Label.HOLD
    if total_score > SELL_ABOVE:
        return Label.SELL
    return Label.STRONG_SELL


def confidence(scores: dict[str, float], weights: dict[str, float], *, candles: int, universe: int) -> float:
    """Factor agreement times data quality, in [0, 1]."""
    available = [n for n in weights if math.isfinite(scores[n]) and weights[n] > 0]
    total = sum(weights.values())
    if not available:
        return 0.0
    w = np.array([weights[n] for n in available])
    s = np.array([scores[n] for n in available])
    mean = float(np.sum(w * s) / np.sum(w))
    agreement = _clip01(1.0 - 2.0 * math.sqrt(float(np.sum(w * (s - mean) ** 2) / np.sum(w))))
    coverage = float(np.sum(w)) / total
    quality = coverage * min(1.0, candles / FULL_HISTORY_CANDLES) * min(1.0, universe / FULL_UNIVERSE)
    return agreement * quality


def score_card(
    m: SymbolIndicators, scores: dict[str, float], weights: dict[str, float], *, timeframe: str, universe: int
) -> ScoreCard:
    """All component scores, the composite and the confidence of one symbol."""
    target = target_volatility(timeframe)
    values = (
        weighted_mean(scores, weights, names=TECHNICAL_FACTORS),
        weighted_mean(scores, weights, names=VOLUME_FACTORS),
        volatility_score(m.volatility, target=target),
        risk_score(drawdown=m.drawdown, sigma=m.volatility, target=target),
        weighted_mean(scores, weights, names=list(weights)),
        confidence(scores, weights, candles=m.candles, universe=universe),
    )
    return ScoreCard(*(round(_clip01(v), SCORE_DECIMALS) for v in values))


def contributions(scores: dict[str, float], weights: dict[str, float]) -> dict[str, float | None]:
    """Each factor's share of the composite (weight / available weight * score); they sum to total_score."""
    available = sum(weights[n] for n in weights if math.isfinite(scores[n]))
    return {
        n: round(weights[n] * scores[n] / available, SCORE_DECIMALS) if math.isfinite(scores[n]) and available else None
        for n in weights
    }


def _finite_or_none(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def rank(
    metrics: Sequence[SymbolIndicators],
    *,
    timeframe: str,
    weights: FactorWeights | None = None,
    liquidity: LiquidityGate | None = None,
) -> tuple[Recommendation, ...]:
    """Recommendations for ``metrics`` (one exchange's universe), best total score first, ranks 1..n."""
    w = (weights or default_weights(timeframe_ms(timeframe))).as_dict()
    gate = (liquidity or LiquidityGate()).threshold([m.volume_24h for m in metrics])
    matrix = factor_scores(metrics)
    rows = [{name: float(matrix[name][i]) for name in matrix} for i in range(len(metrics))]
    cards = [
        score_card(m, s, w, timeframe=timeframe, universe=len(metrics)) for m, s in zip(metrics, rows, strict=True)
    ]
    order = sorted(range(len(metrics)), key=lambda i: (-cards[i].total, metrics[i].symbol))
    return tuple(
        _recommendation(metrics[i], cards[i], rows[i], w, position=position, timeframe=timeframe, gate=gate)
        for position, i in enumerate(order, start=1)
    )


def _recommendation(
    m: SymbolIndicators,
    card: ScoreCard,
    scores: dict[str, float],
    weights: dict[str, float],
    *,
    position: int,
    timeframe: str,
    gate: float,
) -> Recommendation:
    label = label_for(card.total)
    gated = m.volume_24h < gate
    if gated and label in (Label.STRONG_BUY, Label.BUY):
        label = Label.HOLD
    details: dict[str, Any] = {
        "confidence": card.confidence,
        "liquidity_ok": not gated,
        "min_quote_volume_24h": round(gate, 2),
        "factor_scores": {n: _finite_or_none(v, SCORE_DECIMALS) for n, v in scores.items()},
        "contributions": contributions(scores, weights),
        "weights": weights,
        "reasons": reasons(m, scores, timeframe=timeframe, gated=gated, gate=gate),
        **indicator_values(m),
    }
    return Recommendation(
        symbol=m.symbol,
        rank=position,
        total_score=card.total,
        technical_score=card.technical,
        volume_score=card.volume,
        volatility_score=card.volatility,
        risk_score=card.risk,
        label=label,
        current_price=m.close,
        price_change_24h=round(m.price_change_24h_pct, 4),
        volume_24h=m.volume_24h,
        details=details,
    )


def _sig(value: float, digits: int = 6) -> float | None:
    """``value`` rounded to ``digits`` significant digits (prices span many orders of magnitude); None if NaN."""
    return float(f"{value:.{digits}g}") if math.isfinite(value) else None


def indicator_values(m: SymbolIndicators) -> dict[str, Any]:
    """Indicator values at the last candle (rounded; None where the history was too short)."""
    return {
        "rsi": _finite_or_none(m.rsi, 2),
        "macd": _sig(m.macd),
        "macd_signal": _sig(m.macd_signal),
        "macd_hist": _sig(m.macd_hist),
        "percent_b": _finite_or_none(m.percent_b, 4),
        "volume_ratio": _finite_or_none(m.volume_ratio, 3),
        "volume_zscore": _finite_or_none(m.volume_z, 3),
        "obv_trend": _finite_or_none(m.obv_trend, 4),
        "volatility": _finite_or_none(m.volatility * 100, 4),  # percent per candle
        "atr": _sig(m.atr),
        "atr_pct": _finite_or_none(m.atr_pct, 4),
        "ema20_distance_pct": _finite_or_none(m.ema20_distance_pct, 3),
        "ema50_distance_pct": _finite_or_none(m.ema50_distance_pct, 3),
        "momentum_pct": [_finite_or_none(math.expm1(r) * 100, 3) for r in m.momentum],
        "price_change_24_candles": _finite_or_none(m.change_24_candles_pct, 3),
        "drawdown_30_candles": _finite_or_none(m.drawdown * 100, 3),
        "candles": m.candles,
    }
