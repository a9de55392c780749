"""Market status of a whole universe from per-symbol metrics and the benchmark's closes.

Definitions (analysis timeframe throughout):
- market_trend: from the benchmark (BTC by default): EMA20 > EMA50 and EMA20 rising over the last 5 candles ->
  "bullish"; EMA20 < EMA50 and falling -> "bearish"; otherwise, or with fewer than 55 candles, "neutral".
- breadth: share of symbols whose last close is above their own EMA20.
- advancers / decliners / unchanged: symbols whose 24h change is > 0 / < 0 / == 0.
- average_volatility: mean per-candle log-return std of the symbols, in percent per candle.
- top_gainers / top_losers: up to 5 (symbol, 24h change %) with a positive / negative change, largest move first.
- total_volume_24h: sum of the symbols' 24h quote volumes.
- overall_score = 0.4 * breadth + 0.3 * trend score (bullish 1, neutral 0.5, bearish 0)
  + 0.3 * (1 + tanh(mean 24h change % / 5)) / 2, in [0, 1].
- market_sentiment: overall_score >= 0.6 "greed", <= 0.4 "fear", else "neutral".
- analysis_summary counts (the original API's keys): top_gainers = symbols up more than 3 % in 24h,
  top_losers = down more than 3 %, stable_coins = |24h change| below 1 %; plus advancers, decliners, unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.analysis import indicators as ind
from app.analysis.metrics import SymbolMetrics
from app.domain import MarketStatus

TREND_FAST_SPAN, TREND_SLOW_SPAN = 20, 50
TREND_SLOPE_BARS = 5
TOP_MOVERS = 5
SUMMARY_MOVE_PCT = 3.0
STABLE_MOVE_PCT = 1.0
GREED_MIN, FEAR_MAX = 0.6, 0.4
OVERALL_WEIGHTS = {"breadth": 0.4, "trend": 0.3, "change": 0.3}
CHANGE_SCALE_PCT = 5.0
TREND_SCORES = {"bullish": 1.0, "neutral": 0.5, "bearish": 0.0}


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


def sentiment_for(overall_score: float) -> str:
    """The sentiment label the thresholds give an overall score."""
    if overall_score >= GREED_MIN:
        return "greed"
    if overall_score <= FEAR_MAX:
        return "fear"
    return "neutral"


def _movers(metrics: Sequence[SymbolMetrics], *, gainers: bool) -> tuple[tuple[str, float], ...]:
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


def market_status(metrics: Sequence[SymbolMetrics], *, benchmark: BenchmarkTrend) -> MarketStatus:
    """Market status of ``metrics`` (at least one symbol) with the benchmark's trend."""
    changes = np.array([m.price_change_24h_pct for m in metrics], dtype=np.float64)
    breadth = float(np.mean([m.close > m.ema20 for m in metrics]))
    mean_change = float(changes.mean())
    change_score = (1.0 + math.tanh(mean_change / CHANGE_SCALE_PCT)) / 2.0
    w = OVERALL_WEIGHTS
    overall = w["breadth"] * breadth + w["trend"] * TREND_SCORES[benchmark.trend] + w["change"] * change_score
    overall = round(min(1.0, max(0.0, overall)), 4)
    return MarketStatus(
        market_trend=benchmark.trend,
        market_sentiment=sentiment_for(overall),
        overall_score=overall,
        active_coins_count=len(metrics),
        total_volume_24h=float(sum(m.volume_24h for m in metrics)),
        average_volatility=round(float(np.mean([m.volatility for m in metrics])) * 100.0, 4),
        top_gainers=_movers(metrics, gainers=True),
        top_losers=_movers(metrics, gainers=False),
        analysis_summary=_summary(changes),
        details={
            "benchmark": benchmark.symbol,
            "benchmark_ema20": _round_or_none(benchmark.ema_fast, 8),
            "benchmark_ema50": _round_or_none(benchmark.ema_slow, 8),
            "benchmark_ema20_slope_pct": _round_or_none(benchmark.slope_pct, 4),
            "breadth": round(breadth, 4),
            "mean_change_24h_pct": round(mean_change, 4),
            "components": {
                "breadth": round(breadth, 4),
                "trend": TREND_SCORES[benchmark.trend],
                "change": round(change_score, 4),
            },
            "weights": dict(OVERALL_WEIGHTS),
            "volatility_units": "percent per candle",
        },
    )


def _round_or_none(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
