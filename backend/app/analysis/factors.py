"""Cross-sectional factors: raw values from the indicator matrices, rank-normalised across the universe, combined.

Invariants:
- Every factor is oriented so that a higher raw value is the more bullish reading *by the factor's own definition*
  (its a-priori sign: oversold RSI, a fall over the last hour, a calm series, a close near the recent high, ...).
  Fitted weights are non-negative, so a factor can be switched off by the fit but never turned upside down.
- A factor is an elementwise function of ``app.analysis.symbol_indicators.indicator_matrices``: the same code gives
  the value at the last candle (what is served) and its whole history (what the model is fitted on).
- Normalisation is rank-based within one cross-section (one exchange's universe at one time): the lowest value
  scores 0, the highest 1, ties share their average rank, a lone symbol scores 0.5. NaN (history too short) is a
  *missing* factor and counts as neutral (0.5) in the composite; ``-inf`` (no quote volume at all) ranks lowest.
- The composite of scores ``s_f`` with weights ``w_f >= 0`` is ``0.5 + sum w_f (s_f - 0.5) / sum w_f``, in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from app.analysis import indicators as ind
from app.analysis.statistics import row_percentiles
from app.analysis.symbol_indicators import MOMENTUM_PERIODS

Matrices = Mapping[str, ind.FloatArray]


def _ratio(numerator: ind.FloatArray, denominator: ind.FloatArray) -> ind.FloatArray:
    out = np.full(np.shape(numerator), np.nan)
    result: ind.FloatArray = np.divide(numerator, denominator, out=out, where=np.asarray(denominator) > 0)
    return result


def _momentum(m: Matrices) -> ind.FloatArray:
    """Mean of the multi-horizon log returns, each divided by the per-candle volatility times sqrt(horizon)."""
    scaled = [_ratio(m[f"log_return_{p}"], m["volatility"] * math.sqrt(p)) for p in MOMENTUM_PERIODS]
    mean: ind.FloatArray = np.mean(np.stack(scaled), axis=0)
    return mean


def _liquidity(m: Matrices) -> ind.FloatArray:
    """log10 of the 24h quote volume; no volume at all ranks lowest (-inf), unknown volume is missing (NaN)."""
    volume = np.asarray(m["quote_volume_24h"], dtype=np.float64)
    out = np.full(volume.shape, np.nan)
    out[volume == 0] = -np.inf
    np.log10(volume, out=out, where=volume > 0)
    return out


@dataclass(frozen=True, slots=True)
class Factor:
    """A factor: its raw value from the indicator matrices and what a high value means, for people."""

    value: Callable[[Matrices], ind.FloatArray]
    meaning: str


FACTORS: dict[str, Factor] = {
    "reversal_1": Factor(lambda m: -m["log_return_1"], "fell over the last candle (short-term reversal)"),
    "reversal_4": Factor(lambda m: -m["log_return_4"], "fell over the last 4 candles"),
    "reversal_24": Factor(lambda m: -m["log_return_24"], "fell over the last 24 candles"),
    "close_position": Factor(lambda m: -m["close_position"], "closed near the low of its last candle"),
    "rsi": Factor(lambda m: -m["rsi"], "oversold RSI (mean reversion)"),
    "bollinger": Factor(lambda m: -m["percent_b"], "close near the lower Bollinger band"),
    "macd": Factor(lambda m: _ratio(m["macd_hist"], m["atr"]), "MACD histogram above zero, in ATRs"),
    "momentum": Factor(_momentum, "volatility-scaled return over 6, 24 and 72 candles"),
    "trend": Factor(lambda m: _ratio(m["ema50_distance_pct"], m["atr_pct"]), "price above its EMA50, in ATRs"),
    "volume": Factor(lambda m: m["volume_z"], "unusual volume on the last candle"),
    "obv": Factor(lambda m: m["obv_trend"], "volume flowing in on up candles"),
    "low_volatility": Factor(lambda m: -m["volatility"], "calm over the last 24 candles"),
    "low_volatility_long": Factor(lambda m: -m["volatility_long"], "calm over the last 168 candles"),
    "drawdown": Factor(lambda m: -m["drawdown"], "close near its 30-candle high"),
    "liquidity": Factor(_liquidity, "high 24h quote volume"),
}
FACTOR_NAMES = tuple(FACTORS)


def raw_factors(matrices: Matrices) -> dict[str, ind.FloatArray]:
    """Raw factor values with the shape of the given matrices (a last row, or a whole history)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return {name: np.asarray(factor.value(matrices), dtype=np.float64) for name, factor in FACTORS.items()}


def rank_normalise(values: ind.FloatArray) -> ind.FloatArray:
    """Average ranks mapped to [0, 1] along the last axis (one cross-section per row); NaN stays NaN."""
    scaled = row_percentiles(values)
    return scaled[0] if np.ndim(values) == 1 else scaled


def factor_scores(matrices: Matrices) -> dict[str, ind.FloatArray]:
    """Each factor's [0, 1] score per symbol (NaN where missing), rank-normalised per cross-section."""
    return {name: rank_normalise(values) for name, values in raw_factors(matrices).items()}


def check_weights(weights: Mapping[str, float], *, source: str) -> dict[str, float]:
    """``weights`` over every factor (absent = 0), normalised to sum 1; ``ValueError`` naming ``source`` otherwise."""
    unknown = sorted(set(weights) - set(FACTORS))
    if unknown:
        raise ValueError(f"{source}: unknown factors {unknown}; use {sorted(FACTORS)}")
    values = {name: float(weights.get(name, 0.0)) for name in FACTORS}
    if any(not math.isfinite(v) or v < 0 for v in values.values()) or sum(values.values()) <= 0:
        raise ValueError(f"{source}: weights must be finite, non-negative and not all zero")
    total = sum(values.values())
    return {name: value / total for name, value in values.items()}


def composite(scores: Mapping[str, ind.FloatArray], weights: Mapping[str, float]) -> ind.FloatArray:
    """``0.5 + sum w_f (s_f - 0.5) / sum w_f`` over the weighted factors, a missing score counting as 0.5."""
    total = sum(w for w in weights.values() if w > 0)
    shape = np.shape(next(iter(scores.values())))
    out: ind.FloatArray = np.zeros(shape)
    for name, weight in weights.items():
        if weight > 0:
            out += weight * np.nan_to_num(scores[name] - 0.5, nan=0.0)
    return 0.5 + out / total if total > 0 else np.full(shape, 0.5)


def contributions(scores: Mapping[str, float], weights: Mapping[str, float]) -> dict[str, float]:
    """Each weighted factor's pull on the composite, ``w_f (s_f - 0.5) / sum w``; they sum to score - 0.5."""
    total = sum(w for w in weights.values() if w > 0)
    return {
        name: weight * (scores[name] - 0.5) / total if math.isfinite(scores[name]) else 0.0
        for name, weight in weights.items()
        if weight > 0 and total > 0
    }


# Prior weights, used until enough stored history exists to fit (and the centre the fit shrinks towards). Chosen on
# the older part of the bundled history only (docs/analysis.md): on hourly candles the cross-section reverses over
# the next hours (the last candle's fall, a close near the candle's low); over a day calm symbols do better; on daily
# candles a close near the recent high, momentum and liquidity carried the older years.
SHORT_PRIOR = {"reversal_1": 0.35, "close_position": 0.25, "reversal_4": 0.2, "low_volatility_long": 0.2}
HOURS_PRIOR = {"reversal_4": 0.35, "reversal_1": 0.2, "close_position": 0.15, "low_volatility_long": 0.3}
DAY_PRIOR = {"low_volatility_long": 0.5, "low_volatility": 0.2, "drawdown": 0.15, "obv": 0.15}
DAILY_CANDLES_PRIOR = {
    "drawdown": 0.30,
    "momentum": 0.15,
    "trend": 0.10,
    "macd": 0.05,
    "low_volatility": 0.15,
    "liquidity": 0.25,
}
NEXT_CANDLES_MS = 2 * 3_600_000  # up to two hours: the last candle's reversal leads
SHORT_HORIZON_MS = 12 * 3_600_000
DAY_MS = 86_400_000


def prior_weights(*, candle_ms: int, horizon_candles: int) -> dict[str, float]:
    """The documented prior for a horizon: the last candle's reversal up to 2 hours, the last hours' reversal below
    12 hours, calm symbols up to days, the daily set on 1d candles."""
    horizon_ms = candle_ms * horizon_candles
    if candle_ms >= DAY_MS:
        chosen = DAILY_CANDLES_PRIOR
    elif horizon_ms <= NEXT_CANDLES_MS:
        chosen = SHORT_PRIOR
    elif horizon_ms < SHORT_HORIZON_MS:
        chosen = HOURS_PRIOR
    else:
        chosen = DAY_PRIOR
    return check_weights(chosen, source="prior")
