"""Cross-sectional factors: raw values per symbol, rank-normalised across the universe into [0, 1], weighted.

Invariants:
- Every factor is oriented so that a higher raw value is the more bullish reading (see ``FACTORS``).
- Normalisation is rank-based within one call (one exchange's universe): the symbol with the lowest finite raw
  value scores 0, the highest 1, ties share their average rank, a lone symbol scores 0.5. A NaN raw value (history
  too short for that indicator) is a *missing* factor: it gets no score and its weight is left out of the composite.
- The composite is the weighted mean of a symbol's available factor scores, so it is in [0, 1]; 0.5 when no
  factor is available.
- Weights are non-negative and not all zero (``FactorWeights`` raises ``ValueError`` otherwise). Without explicit
  weights the analysis uses ``default_weights(candle length)``: reversal-tilted for intraday candles, momentum-tilted
  for daily and longer ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from app.analysis.symbol_indicators import MOMENTUM_PERIODS, SymbolIndicators


def _momentum(m: SymbolIndicators) -> float:
    """Mean of the multi-horizon log returns, each divided by the per-candle volatility times sqrt(horizon)."""
    if not m.volatility > 0:
        return math.nan
    scaled = [r / (m.volatility * math.sqrt(p)) for r, p in zip(m.momentum, MOMENTUM_PERIODS, strict=True)]
    return float(np.mean(scaled))


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


# name -> raw value, oriented so that higher is more bullish.
FACTORS: dict[str, Callable[[SymbolIndicators], float]] = {
    "rsi": lambda m: -m.rsi,  # oversold ranks high (mean reversion)
    "bollinger": lambda m: -m.percent_b,  # close near the lower band ranks high
    "macd": lambda m: _ratio(m.macd_hist, m.atr),  # MACD histogram in ATR units
    "momentum": _momentum,  # volatility-scaled multi-horizon return
    "trend": lambda m: _ratio(m.ema50_distance_pct, m.atr_pct),  # distance above EMA50 in ATRs
    "volume": lambda m: m.volume_z,  # unusual volume on the last candle
    "obv": lambda m: m.obv_trend,  # volume flowing in on up candles
    "low_volatility": lambda m: -m.volatility,  # calmer symbols rank high
    "drawdown": lambda m: -m.drawdown,  # close near its recent high ranks high
    "liquidity": lambda m: math.log10(m.volume_24h) if m.volume_24h > 0 else math.nan,  # quote volume
}
TECHNICAL_FACTORS = ("rsi", "bollinger", "macd", "momentum", "trend")
VOLUME_FACTORS = ("volume", "obv")


@dataclass(frozen=True, slots=True)
class FactorWeights:
    """Weight of each factor in the composite score (non-negative; normalised by their sum at use)."""

    rsi: float = 0.0
    bollinger: float = 0.0
    macd: float = 0.05
    momentum: float = 0.15
    trend: float = 0.10
    volume: float = 0.0
    obv: float = 0.0
    low_volatility: float = 0.15
    drawdown: float = 0.30
    liquidity: float = 0.25

    def __post_init__(self) -> None:
        values = self.as_dict()
        if any(not math.isfinite(v) or v < 0 for v in values.values()) or sum(values.values()) <= 0:
            raise ValueError(f"factor weights must be finite, non-negative and not all zero: {values}")

    def as_dict(self) -> dict[str, float]:
        """The weights by factor name."""
        return {name: float(value) for name, value in asdict(self).items()}


def raw_factors(metrics: Sequence[SymbolIndicators]) -> dict[str, np.ndarray]:
    """Raw factor values, one array per factor in the order of ``metrics``."""
    return {name: np.array([fn(m) for m in metrics], dtype=np.float64) for name, fn in FACTORS.items()}


def rank_normalise(values: np.ndarray) -> np.ndarray:
    """Average ranks of the finite values mapped to [0, 1] (lowest 0, highest 1, lone value 0.5); NaN stays NaN."""
    out = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    count = int(finite.sum())
    if count == 1:
        out[finite] = 0.5
    elif count > 1:
        ranks = pd.Series(values[finite]).rank(method="average").to_numpy()
        out[finite] = (ranks - 1.0) / (count - 1)
    return out


def factor_scores(metrics: Sequence[SymbolIndicators]) -> dict[str, np.ndarray]:
    """Each factor's [0, 1] score per symbol (NaN where missing)."""
    return {name: rank_normalise(values) for name, values in raw_factors(metrics).items()}


def weighted_mean(scores: Mapping[str, float], weights: Mapping[str, float], *, names: Sequence[str]) -> float:
    """Weighted mean of the available (finite) scores among ``names``; equal weights if theirs sum to 0; else 0.5."""
    available = [n for n in names if math.isfinite(scores[n])]
    total = sum(weights[n] for n in available)
    if not available:
        return 0.5
    if total <= 0:
        return float(np.mean([scores[n] for n in available]))
    return sum(weights[n] * scores[n] for n in available) / total


# Chosen on the older part of the bundled history (docs/analysis.md section 6): daily candles rewarded
# momentum-like factors (close near its high, trend), hourly candles rewarded short-term reversal.
DAILY_WEIGHTS = FactorWeights()
INTRADAY_WEIGHTS = FactorWeights(
    rsi=0.35,
    bollinger=0.35,
    macd=0.0,
    momentum=0.0,
    trend=0.0,
    volume=0.0,
    obv=0.0,
    low_volatility=0.15,
    drawdown=0.0,
    liquidity=0.15,
)


def default_weights(candle_ms: int) -> FactorWeights:
    """``INTRADAY_WEIGHTS`` for candles shorter than a day, else ``DAILY_WEIGHTS`` (= ``FactorWeights()``)."""
    return INTRADAY_WEIGHTS if candle_ms < 86_400_000 else DAILY_WEIGHTS
