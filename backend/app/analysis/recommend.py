"""Scores, labels, reasons and ranking of symbols from their ``SymbolMetrics``.

Every score is in [0, 1] and rounded to 4 decimals; the label is derived from the rounded total.

- technical_score = 0.40 * rsi_score + 0.35 * momentum_score + 0.25 * band_score, where
  rsi_score = clip((70 - RSI) / 40, 0, 1) (RSI 30 or below -> 1, 70 or above -> 0: oversold scores higher),
  momentum_score = (1 + tanh(2 * MACD histogram / ATR14)) / 2 (MACD rising above its signal -> above 0.5; the
  histogram is normalised by ATR so it is comparable across prices; 0.5 when ATR is 0),
  band_score = clip(1 - %B, 0, 1) (close at the lower Bollinger band -> 1, at the upper band -> 0).
- volume_score = r / (r + 1) for the volume ratio r (1x average -> 0.5, 3x -> 0.75); 0.5 when r is unknown.
- volatility_score: moderate volatility is best. With sigma the per-candle log-return std and
  target = 4 % * sqrt(timeframe / 1 day) (4 % a day, scaled to the candle length),
  volatility_score = exp(-ln(sigma / target)^2 / (2 * ln(2)^2)): 1 at the target, ~0.61 at half or double it,
  0 for a flat series.
- risk_score (higher = riskier) = 0.5 * d / (d + 0.05) + 0.5 * sigma / (sigma + target), d the drawdown from the
  30-candle high (5 % drawdown or volatility at the target each give 0.5 of their half).
- total_score = 0.50 * technical + 0.20 * volume + 0.10 * volatility + 0.20 * (1 - risk) (weights sum to 1); on
  the bundled 2022 hourly history its median is about 0.54, so HOLD is the most common label.
- Labels: total >= 0.70 STRONG_BUY, >= 0.58 BUY, > 0.42 HOLD, > 0.30 SELL, else STRONG_SELL.
- Ranking: total_score descending, ties by symbol; ranks are 1..n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.analysis.metrics import DAY_MS, SymbolMetrics
from app.domain import Label, Recommendation, timeframe_ms

RSI_OVERSOLD, RSI_OVERBOUGHT = 30.0, 70.0
TECHNICAL_WEIGHTS = {"rsi": 0.40, "momentum": 0.35, "band": 0.25}
MOMENTUM_SCALE = 2.0
TARGET_DAILY_VOLATILITY = 0.04
VOLATILITY_WIDTH = math.log(2.0)
DRAWDOWN_REFERENCE = 0.05
TOTAL_WEIGHTS = {"technical": 0.50, "volume": 0.20, "volatility": 0.10, "safety": 0.20}
STRONG_BUY_MIN, BUY_MIN, HOLD_ABOVE, SELL_ABOVE = 0.70, 0.58, 0.42, 0.30
SCORE_DECIMALS = 4


@dataclass(frozen=True, slots=True)
class ScoreCard:
    """The component scores and the total of one symbol, each in [0, 1]."""

    technical: float
    volume: float
    volatility: float
    risk: float
    total: float


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value))


def target_volatility(timeframe: str) -> float:
    """The per-candle log-return std that scores best: 4 % a day scaled by sqrt(candle length / 1 day)."""
    return TARGET_DAILY_VOLATILITY * math.sqrt(timeframe_ms(timeframe) / DAY_MS)


def technical_score(m: SymbolMetrics) -> float:
    """Oversold RSI, MACD histogram above zero (ATR-normalised) and a close near the lower band score high."""
    rsi_score = _clip01((RSI_OVERBOUGHT - m.rsi) / (RSI_OVERBOUGHT - RSI_OVERSOLD))
    normalised_hist = m.macd_hist / m.atr if m.atr > 0 else 0.0
    momentum_score = (1.0 + math.tanh(MOMENTUM_SCALE * normalised_hist)) / 2.0
    band_score = _clip01(1.0 - m.percent_b)
    w = TECHNICAL_WEIGHTS
    return _clip01(w["rsi"] * rsi_score + w["momentum"] * momentum_score + w["band"] * band_score)


def volume_score(ratio: float) -> float:
    """Volume ratio r mapped to r / (r + 1); 0.5 when the ratio is unknown."""
    return 0.5 if not math.isfinite(ratio) else _clip01(ratio / (ratio + 1.0))


def volatility_score(sigma: float, *, target: float) -> float:
    """Log-normal bell around ``target``: 1 at the target, 0 for no movement at all."""
    if sigma <= 0:
        return 0.0
    return math.exp(-(math.log(sigma / target) ** 2) / (2.0 * VOLATILITY_WIDTH**2))


def risk_score(*, drawdown: float, sigma: float, target: float) -> float:
    """Half drawdown from the recent high, half volatility, each mapped x / (x + reference)."""
    drawdown = max(0.0, drawdown)
    return _clip01(0.5 * drawdown / (drawdown + DRAWDOWN_REFERENCE) + 0.5 * sigma / (sigma + target))


def score(m: SymbolMetrics, *, timeframe: str) -> ScoreCard:
    """All component scores and the weighted total for one symbol."""
    target = target_volatility(timeframe)
    technical = technical_score(m)
    volume = volume_score(m.volume_ratio)
    volatility = volatility_score(m.volatility, target=target)
    risk = risk_score(drawdown=m.drawdown, sigma=m.volatility, target=target)
    w = TOTAL_WEIGHTS
    total = w["technical"] * technical + w["volume"] * volume + w["volatility"] * volatility + w["safety"] * (1 - risk)
    rounded = [round(_clip01(v), SCORE_DECIMALS) for v in (technical, volume, volatility, risk, total)]
    return ScoreCard(*rounded)


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


def reasons(m: SymbolMetrics) -> list[str]:
    """Human-readable reasons behind the technical and volume scores."""
    zone = "oversold" if m.rsi <= RSI_OVERSOLD else "overbought" if m.rsi >= RSI_OVERBOUGHT else "neutral"
    out = [f"RSI {m.rsi:.1f} ({zone})", f"MACD {'above' if m.macd_hist > 0 else 'below'} signal"]
    if m.percent_b <= 0.0:
        out.append(f"close below the lower Bollinger band (%B {m.percent_b:.2f})")
    elif m.percent_b >= 1.0:
        out.append(f"close above the upper Bollinger band (%B {m.percent_b:.2f})")
    else:
        out.append(f"%B {m.percent_b:.2f} within the Bollinger bands")
    if math.isfinite(m.volume_ratio):
        out.append(f"volume {m.volume_ratio:.1f}× its 20-candle average")
    out.append(f"{m.drawdown * 100:.1f}% below the 30-candle high")
    return out


def details(m: SymbolMetrics) -> dict[str, Any]:
    """Indicator values (rounded) and reasons, as published with a recommendation."""
    ratio = round(m.volume_ratio, 3) if math.isfinite(m.volume_ratio) else None
    return {
        "rsi": round(m.rsi, 2),
        "macd": _sig(m.macd),
        "macd_signal": _sig(m.macd_signal),
        "macd_hist": _sig(m.macd_hist),
        "percent_b": round(m.percent_b, 4),
        "volume_ratio": ratio,
        "volatility": round(m.volatility * 100, 4),  # percent per candle
        "atr": _sig(m.atr),
        "price_change_24_candles": round(m.change_24_candles_pct, 3),
        "drawdown_30_candles": round(m.drawdown * 100, 3),
        "reasons": reasons(m),
    }


def _sig(value: float, digits: int = 6) -> float:
    """``value`` rounded to ``digits`` significant digits (prices span many orders of magnitude)."""
    return float(f"{value:.{digits}g}")


def rank(metrics: Sequence[SymbolMetrics], *, timeframe: str) -> tuple[Recommendation, ...]:
    """Recommendations for ``metrics``, best total score first, ranks 1..n."""
    cards = [(m, score(m, timeframe=timeframe)) for m in metrics]
    cards.sort(key=lambda pair: (-pair[1].total, pair[0].symbol))
    return tuple(
        Recommendation(
            symbol=m.symbol,
            rank=position,
            total_score=card.total,
            technical_score=card.technical,
            volume_score=card.volume,
            volatility_score=card.volatility,
            risk_score=card.risk,
            label=label_for(card.total),
            current_price=m.close,
            price_change_24h=round(m.price_change_24h_pct, 4),
            volume_24h=m.volume_24h,
            details=details(m),
        )
        for position, (m, card) in enumerate(cards, start=1)
    )
