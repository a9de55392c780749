"""Market status of one exchange's universe: benchmark trend, breadth, volatility regime and a sentiment index.

Definitions (analysis timeframe throughout; docs/analysis.md has the table):
- benchmark trend (BTC by default): EMA20 > EMA50 and EMA20 rising over the last 5 candles -> "bullish"; EMA20 <
  EMA50 and falling -> "bearish"; otherwise, or with fewer than 55 candles, "neutral" (``details.benchmark_trend``).
- breadth: share of symbols whose last close is above their own EMA20 / EMA50 (symbols without that EMA are left
  out); advancers / decliners / unchanged: symbols whose 24h change is > 0 / < 0 / == 0.
- volatility regime: the universe's median ATR14% now, as a percentile of its own history (the median ATR% at every
  earlier candle the input covers, at least 20 values): >= 0.8 "high", <= 0.2 "low", else "normal"; "unknown" with
  less history.
- sentiment index 0..100 = weighted mean of components, each 0..100: trend = 50 + 25 tanh(EMA20/EMA50 - 1 in %)
  + 25 tanh(EMA20 slope % / 0.5); breadth_ema20, breadth_ema50 = shares * 100; advance = advancers / (advancers +
  decliners) * 100; momentum = 50 + 50 tanh(mean 24h change % / 5); calm = 100 - volatility percentile * 100.
  Missing components (no benchmark history, unknown regime) count 50.
- market_trend: index >= 60 "bullish", <= 40 "bearish", else "neutral". market_sentiment: >= 75 "extreme greed",
  >= 60 "greed", <= 25 "extreme fear", <= 40 "fear", else "neutral". overall_score = index / 100.
- average_volatility: mean per-candle log-return std of the symbols, in percent per candle.
- top_gainers / top_losers: up to 5 (symbol, 24h change %) with a positive / negative change, largest move first.
- total_volume_24h: sum of the symbols' known 24h quote volumes (an unknown, NaN, volume is left out: no universe-wide
  figure is ever NaN).
- analysis_summary counts (the original API's keys): top_gainers = symbols up more than 3 % in 24h,
  top_losers = down more than 3 %, stable_coins = |24h change| below 1 %; plus advancers, decliners, unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.analysis import indicators as ind
from app.analysis.symbol_indicators import SymbolIndicators
from app.domain import MarketStatus

TREND_FAST_SPAN, TREND_SLOW_SPAN = 20, 50
TREND_SLOPE_BARS = 5
TOP_MOVERS = 5
SUMMARY_MOVE_PCT = 3.0
STABLE_MOVE_PCT = 1.0
CHANGE_SCALE_PCT = 5.0
SLOPE_SCALE_PCT = 0.5
SENTIMENT_WEIGHTS = {
    "trend": 0.25,
    "breadth_ema20": 0.15,
    "breadth_ema50": 0.15,
    "advance": 0.15,
    "momentum": 0.15,
    "calm": 0.15,
}
BULLISH_MIN, BEARISH_MAX = 60.0, 40.0
SENTIMENT_BANDS = ((75.0, "extreme greed"), (60.0, "greed"), (40.000001, "neutral"), (25.000001, "fear"))
REGIME_MIN_HISTORY = 20
REGIME_HIGH, REGIME_LOW = 0.8, 0.2


@dataclass(frozen=True, slots=True)
class BenchmarkTrend:
    """The benchmark's trend and the values it was read from (None when there was not enough history)."""

    symbol: str | None
    trend: str
    ema_fast: float | None = None
    ema_slow: float | None = None
    slope_pct: float | None = None  # EMA20 change over TREND_SLOPE_BARS candles, percent


def benchmark_trend(symbol: str | None, close: ind.FloatArray | None) -> BenchmarkTrend:
    """Trend of one close series from EMA20 vs EMA50 and the EMA20 slope."""
    if symbol is None or close is None or close.size < TREND_SLOW_SPAN + TREND_SLOPE_BARS:
        return BenchmarkTrend(symbol=symbol, trend="neutral")
    fast = ind.ema(close, span=TREND_FAST_SPAN)
    slow = float(ind.ema(close, span=TREND_SLOW_SPAN)[-1])
    slope_pct = (float(fast[-1]) / float(fast[-1 - TREND_SLOPE_BARS]) - 1.0) * 100.0
    if fast[-1] > slow and slope_pct > 0:
        trend = "bullish"
    elif fast[-1] < slow and slope_pct < 0:
        trend = "bearish"
    else:
        trend = "neutral"
    return BenchmarkTrend(symbol=symbol, trend=trend, ema_fast=float(fast[-1]), ema_slow=slow, slope_pct=slope_pct)


def sentiment_for(index: float) -> str:
    """The sentiment word the bands give a 0..100 index."""
    for lower, word in SENTIMENT_BANDS:
        if index >= lower:
            return word
    return "extreme fear"


def trend_for(index: float) -> str:
    """bullish / bearish / neutral from a 0..100 sentiment index."""
    return "bullish" if index >= BULLISH_MIN else "bearish" if index <= BEARISH_MAX else "neutral"


def volatility_regime(history: ind.FloatArray) -> tuple[str, float | None]:
    """Regime and percentile of the last finite value of ``history`` within all its finite values."""
    finite = history[np.isfinite(history)]
    if finite.size < REGIME_MIN_HISTORY:
        return "unknown", None
    percentile = float(np.mean(finite <= finite[-1]))
    regime = "high" if percentile >= REGIME_HIGH else "low" if percentile <= REGIME_LOW else "normal"
    return regime, percentile


def _trend_component(b: BenchmarkTrend) -> float:
    if b.ema_fast is None or b.ema_slow is None or b.slope_pct is None:
        return 50.0
    gap_pct = (b.ema_fast / b.ema_slow - 1.0) * 100.0
    return 50.0 + 25.0 * math.tanh(gap_pct) + 25.0 * math.tanh(b.slope_pct / SLOPE_SCALE_PCT)


def _share_above(metrics: Sequence[SymbolIndicators], attribute: str) -> float | None:
    pairs = [(m.close, getattr(m, attribute)) for m in metrics if math.isfinite(getattr(m, attribute))]
    return float(np.mean([close > level for close, level in pairs])) if pairs else None


def sentiment_components(
    metrics: Sequence[SymbolIndicators], *, benchmark: BenchmarkTrend, volatility_percentile: float | None
) -> dict[str, float]:
    """Each 0..100 component of the sentiment index (50 where unknown)."""
    changes = np.array([m.price_change_24h_pct for m in metrics], dtype=np.float64)
    moving = int(np.sum(changes != 0))
    above20, above50 = _share_above(metrics, "ema20"), _share_above(metrics, "ema50")
    return {
        "trend": _trend_component(benchmark),
        "breadth_ema20": 50.0 if above20 is None else 100.0 * above20,
        "breadth_ema50": 50.0 if above50 is None else 100.0 * above50,
        "advance": 100.0 * float(np.sum(changes > 0)) / moving if moving else 50.0,
        "momentum": 50.0 + 50.0 * math.tanh(float(changes.mean()) / CHANGE_SCALE_PCT),
        "calm": 50.0 if volatility_percentile is None else 100.0 * (1.0 - volatility_percentile),
    }


def _movers(metrics: Sequence[SymbolIndicators], *, gainers: bool) -> tuple[tuple[str, float], ...]:
    sign = 1.0 if gainers else -1.0
    moving = [m for m in metrics if sign * m.price_change_24h_pct > 0]
    moving.sort(key=lambda m: (-sign * m.price_change_24h_pct, m.symbol))
    return tuple((m.symbol, round(m.price_change_24h_pct, 4)) for m in moving[:TOP_MOVERS])


def _summary(changes: ind.FloatArray) -> dict[str, int]:
    return {
        "top_gainers": int(np.sum(changes > SUMMARY_MOVE_PCT)),
        "top_losers": int(np.sum(changes < -SUMMARY_MOVE_PCT)),
        "stable_coins": int(np.sum(np.abs(changes) < STABLE_MOVE_PCT)),
        "advancers": int(np.sum(changes > 0)),
        "decliners": int(np.sum(changes < 0)),
        "unchanged": int(np.sum(changes == 0)),
    }


def market_status(
    metrics: Sequence[SymbolIndicators], *, benchmark: BenchmarkTrend, median_atr_pct_history: ind.FloatArray
) -> MarketStatus:
    """Market status of ``metrics`` (at least one symbol) with the benchmark's trend and the ATR% history."""
    changes = np.array([m.price_change_24h_pct for m in metrics], dtype=np.float64)
    regime, percentile = volatility_regime(median_atr_pct_history)
    components = sentiment_components(metrics, benchmark=benchmark, volatility_percentile=percentile)
    index = sum(SENTIMENT_WEIGHTS[name] * value for name, value in components.items())
    index = round(min(100.0, max(0.0, index)), 2)
    return MarketStatus(
        market_trend=trend_for(index),
        market_sentiment=sentiment_for(index),
        overall_score=round(index / 100.0, 4),
        active_coins_count=len(metrics),
        total_volume_24h=float(sum(m.volume_24h for m in metrics if math.isfinite(m.volume_24h))),
        average_volatility=round(float(np.nanmean([m.volatility for m in metrics])) * 100.0, 4),
        top_gainers=_movers(metrics, gainers=True),
        top_losers=_movers(metrics, gainers=False),
        analysis_summary=_summary(changes),
        details={
            "sentiment_index": index,
            "components": {name: round(value, 2) for name, value in components.items()},
            "weights": dict(SENTIMENT_WEIGHTS),
            "benchmark": benchmark.symbol,
            "benchmark_trend": benchmark.trend,
            "benchmark_ema20": _round_or_none(benchmark.ema_fast, 8),
            "benchmark_ema50": _round_or_none(benchmark.ema_slow, 8),
            "benchmark_ema20_slope_pct": _round_or_none(benchmark.slope_pct, 4),
            "breadth_ema20": _round_or_none(_share_above(metrics, "ema20"), 4),
            "breadth_ema50": _round_or_none(_share_above(metrics, "ema50"), 4),
            "mean_change_24h_pct": round(float(changes.mean()), 4),
            "volatility_regime": regime,
            "volatility_percentile": _round_or_none(percentile, 4),
            "median_atr_pct": _round_or_none(_last_finite(median_atr_pct_history), 4),
            "volatility_units": "percent per candle",
        },
    )


def _last_finite(values: ind.FloatArray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else None


def _round_or_none(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
