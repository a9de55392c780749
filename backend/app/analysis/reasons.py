"""Reasons a trader reads: the factors that moved this symbol's score most, with their value and their standing.

Invariants: pure string formatting of values already computed. A factor appears only when it carries weight and
pulled the score (``weight × (score − 0.5)`` ≠ 0), largest pull first; its text gives the indicator's own value in
the timeframe's units and where it stands in the universe ("RSI 24, among the 10 % most oversold in the universe").
A factor whose value is NaN is left out. The liquidity gate, when it applied, is the last reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

from app.analysis.symbol_indicators import (
    DRAWDOWN_WINDOW,
    MOMENTUM_PERIODS,
    REVERSAL_PERIODS,
    SLOW_EMA_SPAN,
    VOLATILITY_LONG_WINDOW,
    VOLATILITY_WINDOW,
    VOLUME_PERIOD,
    SymbolIndicators,
)

TOP_REASONS = 3
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


def _over(count: int, timeframe: str) -> str:
    word = unit_word(timeframe)
    return f"the last {word}" if count == 1 else f"the last {count} {word}s"


def _move(log_return: float, count: int, timeframe: str) -> str:
    change = math.expm1(log_return) * 100
    return f"{'fell' if change < 0 else 'rose'} {abs(change):.2f}% over {_over(count, timeframe)}"


def _volatility(sigma: float, window: int, timeframe: str) -> str:
    return f"volatility {sigma * 100:.2f}% per {unit_word(timeframe)} over {_over(window, timeframe)}"


def _macd(m: SymbolIndicators, timeframe: str) -> tuple[float, str]:
    if not m.atr > 0:
        return math.nan, ""
    return m.macd_hist / m.atr, f"MACD histogram {m.macd_hist / m.atr:+.2f} ATR"


Text = Callable[[SymbolIndicators, str], tuple[float, str]]  # (the value the text needs, the text)
# factor -> (value text, how the bullish end of the universe is called, how the bearish end is called)
_TEXTS: dict[str, tuple[Text, str, str]] = {
    "reversal_1": (
        lambda m, tf: (m.returns[0], _move(m.returns[0], REVERSAL_PERIODS[0], tf)),
        "weakest",
        "strongest",
    ),
    "reversal_4": (
        lambda m, tf: (m.returns[1], _move(m.returns[1], REVERSAL_PERIODS[1], tf)),
        "weakest",
        "strongest",
    ),
    "reversal_24": (
        lambda m, tf: (m.returns[2], _move(m.returns[2], REVERSAL_PERIODS[2], tf)),
        "weakest",
        "strongest",
    ),
    "close_position": (
        lambda m, tf: (m.close_position, f"closed {m.close_position * 100:.0f}% up its last {unit_word(tf)}'s range"),
        "closest to their candle's low",
        "closest to their candle's high",
    ),
    "rsi": (lambda m, tf: (m.rsi, f"RSI {m.rsi:.0f}"), "most oversold", "most overbought"),
    "bollinger": (
        lambda m, tf: (m.percent_b, f"Bollinger %B {m.percent_b:.2f}"),
        "lowest in their Bollinger bands",
        "highest in their Bollinger bands",
    ),
    "macd": (
        lambda m, tf: (
            m.macd_hist / m.atr if m.atr > 0 else math.nan,
            f"MACD histogram {m.macd_hist / m.atr:+.2f} ATR" if m.atr > 0 else "",
        ),
        "strongest MACD",
        "weakest MACD",
    ),
    "momentum": (
        lambda m, tf: (m.momentum[1], f"{math.expm1(m.momentum[1]) * 100:+.1f}% over {_over(MOMENTUM_PERIODS[1], tf)}"),
        "with the strongest momentum",
        "with the weakest momentum",
    ),
    "trend": (
        lambda m, tf: (
            m.ema50_distance_pct,
            f"price {abs(m.ema50_distance_pct):.1f}% {'above' if m.ema50_distance_pct >= 0 else 'below'} its "
            f"{_span(SLOW_EMA_SPAN, tf)} EMA",
        ),
        "furthest above trend",
        "furthest below trend",
    ),
    "volume": (
        lambda m, tf: (m.volume_ratio, f"volume {m.volume_ratio:.1f}× its {_span(VOLUME_PERIOD, tf)} average"),
        "with the most unusual volume",
        "with the quietest volume",
    ),
    "obv": (
        lambda m, tf: (m.obv_trend, f"on-balance volume {m.obv_trend:+.2f}"),
        "with the strongest buying flow",
        "with the strongest selling flow",
    ),
    "low_volatility": (
        lambda m, tf: (
            m.volatility,
            f"volatility {m.volatility * 100:.2f}% per {unit_word(tf)} over {_over(VOLATILITY_WINDOW, tf)}",
        ),
        "calmest",
        "most volatile",
    ),
    "low_volatility_long": (
        lambda m, tf: (
            m.volatility_long,
            f"volatility {m.volatility_long * 100:.2f}% per {unit_word(tf)} over {_over(VOLATILITY_LONG_WINDOW, tf)}",
        ),
        "calmest",
        "most volatile",
    ),
    "drawdown": (
        lambda m, tf: (m.drawdown, f"{m.drawdown * 100:.1f}% below its {_span(DRAWDOWN_WINDOW, tf)} high"),
        "closest to their high",
        "furthest below their high",
    ),
    "liquidity": (lambda m, tf: (m.volume_24h, f"24h quote volume {m.volume_24h:,.0f}"), "most traded", "least traded"),
}


def standing(score: float, *, bullish: str, bearish: str) -> str:
    """Where a factor score (0..1, 1 = the universe's most bullish reading) stands, in words."""
    if score >= 0.9:
        return f"among the 10 % {bullish} in the universe"
    if score >= 0.75:
        return f"among the 25 % {bullish} in the universe"
    if score <= 0.1:
        return f"among the 10 % {bearish} in the universe"
    if score <= 0.25:
        return f"among the 25 % {bearish} in the universe"
    return "near the middle of the universe"


def factor_reason(name: str, m: SymbolIndicators, score: float, *, timeframe: str) -> str | None:
    """One factor's reason, or None when its value is unknown."""
    text, bullish, bearish = _TEXTS[name]
    value, words = text(m, timeframe)
    if not math.isfinite(value) or not math.isfinite(score) or not words:
        return None
    return f"{words}, {standing(score, bullish=bullish, bearish=bearish)}"


def reasons(
    m: SymbolIndicators,
    scores: Mapping[str, float],
    pulls: Mapping[str, float],
    *,
    timeframe: str,
    gated: bool,
    gate: float,
    top: int = TOP_REASONS,
) -> list[str]:
    """The ``top`` factors that pulled the score most (by ``pulls``, never a zero-weight one), then the gate."""
    ranked = sorted((n for n, pull in pulls.items() if pull != 0), key=lambda n: (-abs(pulls[n]), n))
    out = [text for n in ranked if (text := factor_reason(n, m, scores[n], timeframe=timeframe)) is not None][:top]
    if gated:
        volume = f"{m.volume_24h:,.0f} is below" if math.isfinite(m.volume_24h) else "is unknown; needs"
        out.append(f"not a buy: 24h quote volume {volume} the minimum {gate:,.0f}")
    return out
