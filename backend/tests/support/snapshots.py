"""Snapshots for the API tests, derived from the bundled real Binance daily candles (no app.analysis).

The figures are simple, honest statistics of the real prices (returns, volume ratio, volatility, drawdown,
window highs and lows) so every field the API serves carries a real value of the right unit and range.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import statistics
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from app.config import BUNDLED_DATA_DIR
from app.domain import (
    Candle,
    Label,
    Level,
    MarketStatus,
    Recommendation,
    Snapshot,
    SupportLevels,
    ms_to_datetime,
    timeframe_ms,
    utc_now,
)

FIXTURE_BASES = ("BTC", "ETH", "SOL", "ADA", "XRP", "DOGE", "LTC", "ATOM")
LOOKBACK_DAYS = 90
LEVEL_WINDOWS_DAYS = (7, 30, 90)
TOUCH_TOLERANCE = 0.01


def load_daily_candles(base: str, *, limit: int = LOOKBACK_DAYS) -> list[Candle]:
    """The newest ``limit`` bundled daily candles of ``base``/USDT."""
    path = BUNDLED_DATA_DIR / "1d" / f"{base}_USDT-1d.json.gz"
    with gzip.open(path, "rt") as handle:
        rows = json.load(handle)
    return [Candle(int(row[0]), *(float(value) for value in row[1:6])) for row in rows[-limit:]]


def _label(total: float) -> Label:
    for threshold, label in ((0.65, Label.STRONG_BUY), (0.55, Label.BUY), (0.45, Label.HOLD), (0.35, Label.SELL)):
        if total >= threshold:
            return label
    return Label.STRONG_SELL


def _max_drawdown(closes: Sequence[float]) -> float:
    peak, worst = closes[0], 0.0
    for close in closes:
        peak = max(peak, close)
        worst = max(worst, 1 - close / peak)
    return worst


def _recommendation(symbol: str, candles: Sequence[Candle]) -> Recommendation:
    closes = [c.close for c in candles]
    returns = [b / a - 1 for a, b in zip(closes[-31:-1], closes[-30:], strict=True)]
    quote_volumes = [c.volume * c.close for c in candles]
    volume_ratio = statistics.fmean(quote_volumes[-7:]) / statistics.fmean(quote_volumes)
    volatility = statistics.pstdev(returns)
    drawdown = _max_drawdown(closes)
    scores = {
        "technical_score": sum(r > 0 for r in returns[-14:]) / 14,
        "volume_score": volume_ratio / (1 + volume_ratio),
        "volatility_score": max(0.0, 1 - 10 * volatility),
        "risk_score": 1 - drawdown,
    }
    total = statistics.fmean(scores.values())
    return Recommendation(
        symbol=symbol,
        rank=0,
        total_score=total,
        label=_label(total),
        current_price=closes[-1],
        price_change_24h=(closes[-1] / closes[-2] - 1) * 100,
        volume_24h=quote_volumes[-1],
        details={
            "return_30d_pct": (closes[-1] / closes[-31] - 1) * 100,
            "volatility_30d": volatility,
            "max_drawdown_90d": drawdown,
            "timeframe": "1d",
        },
        **scores,
    )


def _level(candles: Sequence[Candle], *, kind: str, window_days: int) -> Level:
    recent = candles[-window_days:]
    last_close = candles[-1].close
    price = min(c.low for c in recent) if kind == "support" else max(c.high for c in recent)
    touched = [c for c in recent if abs((c.low if kind == "support" else c.high) / price - 1) <= TOUCH_TOLERANCE]
    return Level(
        price=price,
        kind=kind,
        strength=window_days / LOOKBACK_DAYS,
        sources=(f"{window_days}d_extreme",),
        touches=len(touched),
        last_touched_at=ms_to_datetime(touched[-1].open_time_ms),
        distance_pct=(price / last_close - 1) * 100,
    )


def _support_levels(symbol: str, candles: Sequence[Candle]) -> SupportLevels:
    supports = [_level(candles, kind="support", window_days=days) for days in LEVEL_WINDOWS_DAYS]
    resistances = [_level(candles, kind="resistance", window_days=days) for days in LEVEL_WINDOWS_DAYS]
    return SupportLevels(
        symbol=symbol,
        aggressive_support=supports[0].price,
        moderate_support=supports[1].price,
        conservative_support=supports[2].price,
        aggressive_resistance=resistances[0].price,
        moderate_resistance=resistances[1].price,
        conservative_resistance=resistances[2].price,
        calculation_method="window_extremes",
        data_points_count=len(candles),
        levels=(*supports, *resistances),
    )


def _market(recs: Sequence[Recommendation]) -> MarketStatus:
    by_change = sorted(recs, key=lambda rec: rec.price_change_24h, reverse=True)
    mean_change_30d = statistics.fmean(rec.details["return_30d_pct"] for rec in recs)
    trend = "bullish" if mean_change_30d > 2 else "bearish" if mean_change_30d < -2 else "neutral"
    overall = statistics.fmean(rec.total_score for rec in recs)
    return MarketStatus(
        market_trend=trend,
        market_sentiment="greed" if overall > 0.55 else "fear" if overall < 0.45 else "neutral",
        overall_score=overall,
        active_coins_count=len(recs),
        total_volume_24h=sum(rec.volume_24h for rec in recs),
        average_volatility=statistics.fmean(rec.details["volatility_30d"] for rec in recs),
        top_gainers=tuple((rec.symbol, rec.price_change_24h) for rec in by_change[:3]),
        top_losers=tuple((rec.symbol, rec.price_change_24h) for rec in by_change[::-1][:3]),
        analysis_summary={"mean_return_30d_pct": mean_change_30d},
        details={"source": "bundled binance 1d"},
    )


def build_snapshot(
    *,
    exchange: str = "binance",
    bases: Sequence[str] = FIXTURE_BASES,
    generated_at: datetime | None = None,
    run_id: str | None = None,
) -> Snapshot:
    """A complete snapshot of ``bases``/USDT computed from their newest real daily candles."""
    candles = {f"{base}/USDT": load_daily_candles(base) for base in bases}
    unranked = [_recommendation(symbol, series) for symbol, series in candles.items()]
    ranked = sorted(unranked, key=lambda rec: rec.total_score, reverse=True)
    recs = tuple(dataclasses.replace(rec, rank=index + 1) for index, rec in enumerate(ranked))
    last_open_ms = max(series[-1].open_time_ms for series in candles.values())
    return Snapshot(
        run_id=run_id or uuid.uuid4().hex,
        exchange=exchange,
        timeframe="1d",
        data_as_of=ms_to_datetime(last_open_ms + timeframe_ms("1d")),
        generated_at=generated_at or utc_now() - timedelta(seconds=1),
        universe_size=len(bases),
        recommendations=recs,
        levels={symbol: _support_levels(symbol, series) for symbol, series in candles.items()},
        market=_market(recs),
    )
