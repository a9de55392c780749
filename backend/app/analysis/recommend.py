"""Recommendations: one composite per served horizon, calibrated probabilities and labels, reasons, ranking.

Definitions (docs/analysis.md §2; every score is in [0, 1], rounded to 4 decimals):
- Per horizon h: score_h = the composite of the rank-normalised factors with h's model weights
  (``app.analysis.factors.composite``); rank_h by score_h descending (ties by symbol, ranks 1..n).
- probability_outperform_h = the model's calibration at the score's cross-sectional percentile: the measured
  probability that the symbol's h-forward return beats the universe median. None when h has no active labels.
- Labels by probability: >= 0.56 STRONG_BUY, >= 0.52 BUY, <= 0.44 STRONG_SELL, <= 0.48 SELL, else HOLD; every label is
  HOLD when the model has no measured edge (``HorizonModel.labels_active`` false, ``note`` says why). The liquidity
  gate caps a symbol below the minimum quote volume at HOLD (a reason says so); an unknown (NaN) volume is below
  every minimum, its liquidity factor is missing and the published ``volume_24h`` is 0 (never NaN).
- The legacy fields (``total_score``, ``rank``, ``label``) are the default horizon's; ``scores_by_horizon`` has all.
- technical_score / volume_score = the default horizon's composite restricted to the technical / volume factors
  (equal weights when those weights are all 0); volatility_score and risk_score are absolute (see below).
- volatility_score: moderate volatility is best; target = 4 % * sqrt(timeframe / 1 day),
  exp(-ln(sigma / target)^2 / (2 ln(2)^2)). risk_score = 0.5 d / (d + 0.05) + 0.5 sigma / (sigma + target).
- confidence = agreement * quality (weighted dispersion of the factor scores; history and universe coverage).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.analysis import indicators as ind
from app.analysis.calibration import probability
from app.analysis.factors import composite, contributions, factor_scores
from app.analysis.reasons import reasons
from app.analysis.statistics import row_percentiles
from app.analysis.symbol_indicators import DAY_MS, SymbolIndicators
from app.domain import HorizonModel, HorizonScore, Label, Recommendation, timeframe_ms

TARGET_DAILY_VOLATILITY = 0.04
VOLATILITY_WIDTH = math.log(2.0)
DRAWDOWN_REFERENCE = 0.05
STRONG_BUY_MIN, BUY_MIN, SELL_MAX, STRONG_SELL_MAX = 0.56, 0.52, 0.48, 0.44
SCORE_DECIMALS = 4
FULL_HISTORY_CANDLES = 200
FULL_UNIVERSE = 10
TECHNICAL_FACTORS = (
    "reversal_1",
    "reversal_4",
    "reversal_24",
    "close_position",
    "rsi",
    "bollinger",
    "macd",
    "momentum",
    "trend",
)
VOLUME_FACTORS = ("volume", "obv")


@dataclass(frozen=True, slots=True)
class LiquidityGate:
    """Minimum 24h quote volume for a BUY/STRONG_BUY: the larger of an absolute floor and a share of the median."""

    min_quote_volume_24h: float = 0.0
    min_share_of_median: float = 0.05

    def threshold(self, volumes: Sequence[float]) -> float:
        """The minimum quote volume for this universe (unknown volumes are ignored, never turn it into NaN)."""
        known = np.asarray([v for v in volumes if math.isfinite(v)], dtype=np.float64)
        median = float(np.median(known)) if known.size else 0.0
        return max(self.min_quote_volume_24h, self.min_share_of_median * median)


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.5


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


def label_for_probability(p: float | None) -> Label:
    """The label the probability thresholds give (HOLD without a probability)."""
    if p is None or not math.isfinite(p):
        return Label.HOLD
    if p >= STRONG_BUY_MIN:
        return Label.STRONG_BUY
    if p >= BUY_MIN:
        return Label.BUY
    if p <= STRONG_SELL_MAX:
        return Label.STRONG_SELL
    if p <= SELL_MAX:
        return Label.SELL
    return Label.HOLD


def confidence(
    scores: Mapping[str, ind.FloatArray], weights: Mapping[str, float], *, candles: ind.FloatArray, universe: int
) -> ind.FloatArray:
    """Factor agreement times data quality per symbol, in [0, 1] (scores: factor -> per-symbol values)."""
    used = [n for n, w in weights.items() if w > 0]
    if not used:
        return np.zeros(np.shape(candles))
    s = np.stack([scores[n] for n in used])
    w = np.array([weights[n] for n in used])[:, None] * np.isfinite(s)
    s = np.nan_to_num(s, nan=0.0)
    available = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (w * s).sum(axis=0) / available
        spread = np.sqrt((w * (s - mean) ** 2).sum(axis=0) / available)
    agreement = np.clip(1.0 - 2.0 * spread, 0.0, 1.0)
    quality = available / sum(weights[n] for n in used) * np.minimum(1.0, candles / FULL_HISTORY_CANDLES)
    out: ind.FloatArray = np.where(available > 0, agreement * quality * min(1.0, universe / FULL_UNIVERSE), 0.0)
    return out


def family_score(
    scores: Mapping[str, ind.FloatArray], weights: Mapping[str, float], *, names: Sequence[str]
) -> ind.FloatArray:
    """The composite restricted to ``names`` (equal weights when theirs are all 0), per symbol."""
    chosen = {n: weights.get(n, 0.0) for n in names}
    if sum(chosen.values()) <= 0:
        chosen = dict.fromkeys(names, 1.0)
    return composite({n: scores[n] for n in names}, chosen)


@dataclass(frozen=True, slots=True)
class HorizonRanking:
    """One horizon's scores, ranks, probabilities and labels for the whole universe (symbol order of the input)."""

    model: HorizonModel
    scores: ind.FloatArray
    ranks: list[int]
    probabilities: ind.FloatArray
    labels: list[Label]


def _gated(label: Label, gated: bool) -> Label:
    return Label.HOLD if gated and label in (Label.BUY, Label.STRONG_BUY) else label


def rank_horizon(
    symbols: Sequence[str], scores: Mapping[str, ind.FloatArray], model: HorizonModel, *, gated: ind.FloatArray
) -> HorizonRanking:
    """Score, rank, calibrate and label every symbol at one horizon."""
    values = np.round(composite(scores, model.weights), SCORE_DECIMALS)
    order = sorted(range(len(symbols)), key=lambda i: (-values[i], symbols[i]))
    ranks = [0] * len(symbols)
    for position, index in enumerate(order, start=1):
        ranks[index] = position
    active = model.labels_active and bool(model.calibration)
    probabilities = (
        probability(model.calibration, row_percentiles(values)[0]) if active else np.full(len(symbols), np.nan)
    )
    labels = [label_for_probability(float(p)) if active else Label.HOLD for p in probabilities]
    labels = [
        Label.HOLD if gate and label in (Label.BUY, Label.STRONG_BUY) else label
        for label, gate in zip(labels, gated, strict=True)
    ]
    return HorizonRanking(model, values, ranks, np.round(probabilities, SCORE_DECIMALS), labels)


@dataclass(frozen=True, slots=True)
class _Scored:
    """Everything computed for the whole universe at once, read per symbol by ``_recommendation``."""

    scores: Mapping[str, ind.FloatArray]  # factor -> per-symbol score
    rankings: Mapping[str, HorizonRanking]
    default_horizon: str
    confidence: ind.FloatArray
    technical: ind.FloatArray
    volume: ind.FloatArray
    gate: float
    gated: ind.FloatArray
    timeframe: str


def rank(
    metrics: Sequence[SymbolIndicators],
    last_rows: Mapping[str, ind.FloatArray],
    *,
    timeframe: str,
    models: Mapping[str, HorizonModel],
    default_horizon: str,
    liquidity: LiquidityGate | None = None,
) -> tuple[Recommendation, ...]:
    """Recommendations for ``metrics`` (one exchange's universe), best default-horizon score first."""
    symbols = [m.symbol for m in metrics]
    gate = (liquidity or LiquidityGate()).threshold([m.volume_24h for m in metrics])
    gated = np.array([not m.volume_24h >= gate for m in metrics])
    scores = factor_scores(last_rows)
    rankings = {name: rank_horizon(symbols, scores, model, gated=gated) for name, model in models.items()}
    weights = rankings[default_horizon].model.weights
    candles = np.array([m.candles for m in metrics], dtype=np.float64)
    scored = _Scored(
        scores=scores,
        rankings=rankings,
        default_horizon=default_horizon,
        confidence=confidence(scores, weights, candles=candles, universe=len(metrics)),
        technical=family_score(scores, weights, names=TECHNICAL_FACTORS),
        volume=family_score(scores, weights, names=VOLUME_FACTORS),
        gate=gate,
        gated=gated,
        timeframe=timeframe,
    )
    return tuple(sorted((_recommendation(m, i, scored) for i, m in enumerate(metrics)), key=lambda r: r.rank))


def _horizon_scores(index: int, rankings: Mapping[str, HorizonRanking]) -> dict[str, HorizonScore]:
    return {
        name: HorizonScore(
            score=float(r.scores[index]),
            rank=r.ranks[index],
            label=r.labels[index],
            probability_outperform=None if math.isnan(r.probabilities[index]) else float(r.probabilities[index]),
        )
        for name, r in rankings.items()
    }


def _recommendation(m: SymbolIndicators, index: int, scored: _Scored) -> Recommendation:
    by_horizon = _horizon_scores(index, scored.rankings)
    main, model = by_horizon[scored.default_horizon], scored.rankings[scored.default_horizon].model
    scores = {name: float(values[index]) for name, values in scored.scores.items()}
    pulls = contributions(scores, model.weights)
    gated = bool(scored.gated[index])
    target = target_volatility(scored.timeframe)
    details: dict[str, Any] = {
        "confidence": round(float(scored.confidence[index]), SCORE_DECIMALS),
        "liquidity_ok": not gated,
        "min_quote_volume_24h": round(scored.gate, 2),
        "factor_scores": {n: _finite_or_none(v, SCORE_DECIMALS) for n, v in scores.items()},
        "contributions": {n: round(v, SCORE_DECIMALS) for n, v in pulls.items()},
        "weights": {n: w for n, w in model.weights.items() if w > 0},
        "labels_note": model.note,
        "reasons": reasons(m, scores, pulls, timeframe=scored.timeframe, gated=gated, gate=scored.gate),
        **indicator_values(m),
    }
    return Recommendation(
        symbol=m.symbol,
        rank=main.rank,
        total_score=main.score,
        technical_score=round(_clip01(float(scored.technical[index])), SCORE_DECIMALS),
        volume_score=round(_clip01(float(scored.volume[index])), SCORE_DECIMALS),
        volatility_score=round(volatility_score(m.volatility, target=target), SCORE_DECIMALS),
        risk_score=round(risk_score(drawdown=m.drawdown, sigma=m.volatility, target=target), SCORE_DECIMALS),
        label=main.label,
        current_price=m.close,
        price_change_24h=round(m.price_change_24h_pct, 4),
        volume_24h=m.volume_24h if math.isfinite(m.volume_24h) else 0.0,
        details=details,
        horizon=scored.default_horizon,
        probability_outperform=main.probability_outperform,
        calibration_samples=model.calibration_samples,
        scores_by_horizon=by_horizon,
    )


def _finite_or_none(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


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
        "volatility_long": _finite_or_none(m.volatility_long * 100, 4),
        "atr": _sig(m.atr),
        "atr_pct": _finite_or_none(m.atr_pct, 4),
        "ema20_distance_pct": _finite_or_none(m.ema20_distance_pct, 3),
        "ema50_distance_pct": _finite_or_none(m.ema50_distance_pct, 3),
        "momentum_pct": [_finite_or_none(math.expm1(r) * 100, 3) for r in m.momentum],
        "returns_pct": [_finite_or_none(math.expm1(r) * 100, 3) for r in m.returns],
        "close_position": _finite_or_none(m.close_position, 4),
        "price_change_24_candles": _finite_or_none(m.change_24_candles_pct, 3),
        "drawdown_30_candles": _finite_or_none(m.drawdown * 100, 3),
        "candles": m.candles,
    }
