"""Human-readable reasons for a recommendation, in the timeframe's own units ("20-hour average", "24 days").

Invariants: pure string formatting of values already computed; a reason is left out when its value is NaN. The
first reasons name the factors that moved the composite most (score furthest from the neutral 0.5), then the
liquidity gate when it applied.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

from app.analysis.symbol_indicators import (
    DRAWDOWN_WINDOW,
    MOMENTUM_PERIODS,
    SLOW_EMA_SPAN,
    VOLUME_PERIOD,
    SymbolIndicators,
)

RSI_OVERSOLD, RSI_OVERBOUGHT = 30.0, 70.0
ALWAYS_SHOWN = ("rsi", "volume")
_UNIT_WORDS = {"m": "minute", "h": "hour", "d": "day", "w": "week", "M": "month"}


def unit_word(timeframe: str) -> str:
    """The word for one candle: ``1h`` -> "hour", ``1d`` -> "day", ``4h`` -> "4-hour candle"."""
    match = re.fullmatch(r"(\d+)([mhdwM])", timeframe)
    if match is None:
        return "candle"
    count, unit = int(match.group(1)), _UNIT_WORDS[match.group(2)]
    return unit if count == 1 else f"{count}-{unit} candle"


def _span(count: int, timeframe: str) -> str:
    """``20`` candles of ``1h`` -> "20-hour"; of ``4h`` -> "20-candle (4h)"."""
    word = unit_word(timeframe)
    return f"{count}-{word}" if " " not in word else f"{count}-candle ({timeframe})"


def _rsi(m: SymbolIndicators) -> str | None:
    if not math.isfinite(m.rsi):
        return None
    zone = "oversold" if m.rsi <= RSI_OVERSOLD else "overbought" if m.rsi >= RSI_OVERBOUGHT else "neutral"
    return f"RSI {m.rsi:.0f} ({zone})"


_TEXTS: dict[str, tuple[str, Callable[[SymbolIndicators, str], str]]] = {
    "rsi": ("rsi", lambda m, tf: _rsi(m) or ""),
    "bollinger": ("percent_b", lambda m, tf: f"Bollinger %B {m.percent_b:.2f}"),
    "macd": ("macd_hist", lambda m, tf: f"MACD histogram {'above' if m.macd_hist > 0 else 'below'} zero"),
    "momentum": (
        "volatility",
        lambda m, tf: f"{math.expm1(m.momentum[1]) * 100:+.1f}% over {MOMENTUM_PERIODS[1]} {unit_word(tf)}s",
    ),
    "trend": (
        "ema50_distance_pct",
        lambda m, tf: (
            f"price {abs(m.ema50_distance_pct):.1f}% {'above' if m.ema50_distance_pct >= 0 else 'below'} "
            f"its {_span(SLOW_EMA_SPAN, tf)} EMA"
        ),
    ),
    "volume": ("volume_ratio", lambda m, tf: f"volume {m.volume_ratio:.1f}× its {_span(VOLUME_PERIOD, tf)} average"),
    "obv": (
        "obv_trend",
        lambda m, tf: f"on-balance volume {'rising' if m.obv_trend > 0 else 'falling'} ({m.obv_trend:+.2f})",
    ),
    "low_volatility": ("volatility", lambda m, tf: f"volatility {m.volatility * 100:.2f}% per {unit_word(tf)}"),
    "drawdown": ("drawdown", lambda m, tf: f"{m.drawdown * 100:.1f}% below the {_span(DRAWDOWN_WINDOW, tf)} high"),
    "liquidity": ("volume_24h", lambda m, tf: f"24h quote volume {m.volume_24h:,.0f}"),
}


def _factor_text(name: str, m: SymbolIndicators, timeframe: str) -> str | None:
    attribute, text = _TEXTS[name]
    if not math.isfinite(getattr(m, attribute)) or (name == "momentum" and not math.isfinite(m.momentum[1])):
        return None
    return text(m, timeframe) or None


def reasons(
    m: SymbolIndicators, scores: Mapping[str, float], *, timeframe: str, gated: bool, gate: float, top: int = 4
) -> list[str]:
    """The ``top`` most influential factors (RSI and volume always) with their scores, then the liquidity gate."""
    ranked = sorted((n for n in scores if math.isfinite(scores[n])), key=lambda n: (-abs(scores[n] - 0.5), n))
    chosen = ranked[:top] + [n for n in ALWAYS_SHOWN if n in ranked[top:]]
    out: list[str] = []
    for name in chosen:
        text = _factor_text(name, m, timeframe)
        if text is not None:
            verdict = "bullish" if scores[name] > 0.5 else "bearish" if scores[name] < 0.5 else "neutral"
            out.append(f"{text} — {verdict} vs the universe ({name} score {scores[name]:.2f})")
    if gated:
        out.append(f"not a buy: 24h quote volume {m.volume_24h:,.0f} is below the minimum {gate:,.0f}")
    return out
