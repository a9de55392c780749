"""The one Snapshot factory of the test suite: every figure derived from the bundled real Binance candles.

No ``app.analysis``: the numbers are plain, honest statistics of the real prices closed by ``as_of_ms`` (epoch
ms): the price, 24-hour change, volume and range from the hourly candles; the scores, levels and market from the
newest 90 daily ones. A base without enough bundled history is reported in ``errors`` (as the worker reports a
symbol it could not analyse) and still counts in ``universe_size``. A wider window whose extreme is the narrower
window's adds no level of its own: that level is ``None``.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from app.domain import (
    Candle,
    HorizonModel,
    HorizonScore,
    Label,
    Level,
    MarketStatus,
    PivotPoints,
    Recommendation,
    Snapshot,
    SupportLevels,
    VolumeProfileLevels,
    ms_to_datetime,
    timeframe_ms,
    utc_now,
)
from tests.support.candles import bundled_bases, closed

MakeSnapshot = Callable[..., Snapshot]  # build_snapshot, as the make_snapshot fixture hands it out
SNAPSHOT_BASES = ("BTC", "ETH", "SOL", "ADA", "XRP", "DOGE", "LTC", "ATOM", "LUNA")  # LUNA is not bundled
SNAPSHOT_AS_OF_MS = 1_664_582_400_000  # 2022-10-01 00:00 UTC, inside the bundled 1h and 1d history
LOOKBACK_DAYS = 90
HOURS_NEEDED = 25  # the last 24 hours and the close before them
LEVEL_WINDOWS_DAYS = (7, 30, 90)
HORIZON_HOURS = {"1h": 1, "4h": 4, "24h": 24}  # served horizons; the factory's score at h: share of up moves of h hours
DEFAULT_HORIZON = "24h"  # the legacy fields follow the daily-candle score below
TOUCH_TOLERANCE = 0.01
VALUE_AREA_SHARE = 0.7


@dataclasses.dataclass(frozen=True)
class _Series:
    """The closed candles of one symbol that its figures come from."""

    hourly: Sequence[Candle]
    daily: Sequence[Candle]

    @property
    def last_close(self) -> float:
        return self.hourly[-1].close


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


def _recommendation(symbol: str, series: _Series) -> Recommendation:
    closes = [c.close for c in series.daily]
    returns = [b / a - 1 for a, b in zip(closes[-31:-1], closes[-30:], strict=True)]
    quote_volumes = [c.volume * c.close for c in series.daily]
    volume_ratio = statistics.fmean(quote_volumes[-7:]) / statistics.fmean(quote_volumes)
    volatility, drawdown = statistics.pstdev(returns), _max_drawdown(closes)
    scores = {
        "technical_score": sum(r > 0 for r in returns[-14:]) / 14,
        "volume_score": volume_ratio / (1 + volume_ratio),
        "volatility_score": max(0.0, 1 - 10 * volatility),
        "risk_score": 1 - drawdown,
    }
    total = statistics.fmean(scores.values())
    day = series.hourly[-24:]
    return Recommendation(
        symbol=symbol,
        rank=0,
        total_score=total,
        label=_label(total),
        current_price=series.last_close,
        price_change_24h=(series.last_close / series.hourly[-25].close - 1) * 100,
        volume_24h=sum(c.close * c.volume for c in day),
        details={
            "return_30d_pct": (closes[-1] / closes[-31] - 1) * 100,
            "volatility_30d": volatility,
            "max_drawdown_90d": drawdown,
            "range_24h": {"high": max(c.high for c in day), "low": min(c.low for c in day)},
        },
        **scores,
    )


def _level(series: _Series, *, kind: str, window_days: int) -> Level:
    recent = series.daily[-window_days:]
    price = min(c.low for c in recent) if kind == "support" else max(c.high for c in recent)
    touched = [c for c in recent if abs((c.low if kind == "support" else c.high) / price - 1) <= TOUCH_TOLERANCE]
    return Level(
        price=price,
        kind=kind,
        strength=window_days / LOOKBACK_DAYS,
        sources=(f"{window_days}d_extreme",),
        touches=len(touched),
        last_touched_at=ms_to_datetime(touched[-1].open_time_ms),
        distance_pct=(price / series.last_close - 1) * 100,
    )


def _distinct(levels: Sequence[Level]) -> list[Level | None]:
    """Each window's level, ``None`` where a wider window found the same extreme as the narrower one."""
    return [level if i == 0 or level.price != levels[i - 1].price else None for i, level in enumerate(levels)]


def _pivots(day: Candle) -> PivotPoints:
    """The classic floor pivots of the last closed day."""
    pivot = (day.high + day.low + day.close) / 3
    span = day.high - day.low
    return PivotPoints(
        period_start=ms_to_datetime(day.open_time_ms),
        high=day.high,
        low=day.low,
        close=day.close,
        pivot=pivot,
        r1=2 * pivot - day.low,
        r2=pivot + span,
        s1=2 * pivot - day.high,
        s2=pivot - span,
    )


def _volume_profile(daily: Sequence[Candle]) -> VolumeProfileLevels:
    """A coarse profile by whole days: the busiest day's typical price, and the range of the busiest days that hold
    70 % of the volume."""
    by_volume = sorted(daily, key=lambda c: -c.volume)
    total, held, busiest = sum(c.volume for c in daily), 0.0, []
    for candle in by_volume:
        busiest.append((candle.high + candle.low + candle.close) / 3)
        held += candle.volume
        if held >= VALUE_AREA_SHARE * total:
            break
    return VolumeProfileLevels(busiest[0], max(busiest), min(busiest), value_area_share=VALUE_AREA_SHARE)


def _support_levels(symbol: str, series: _Series) -> SupportLevels:
    supports = _distinct([_level(series, kind="support", window_days=d) for d in LEVEL_WINDOWS_DAYS])
    resistances = _distinct([_level(series, kind="resistance", window_days=d) for d in LEVEL_WINDOWS_DAYS])
    support, resistance = [[level.price if level else None for level in side] for side in (supports, resistances)]
    return SupportLevels(
        symbol=symbol,
        aggressive_support=support[0],
        moderate_support=support[1],
        conservative_support=support[2],
        aggressive_resistance=resistance[0],
        moderate_resistance=resistance[1],
        conservative_resistance=resistance[2],
        calculation_method="window_extremes",
        data_points_count=len(series.daily),
        levels=tuple(level for level in (*supports, *resistances) if level),
        pivots=_pivots(series.daily[-1]),
        volume_profile=_volume_profile(series.daily),
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
        analysis_summary={"mean_return_30d_pct": mean_change_30d, "labels": sorted({rec.label.value for rec in recs})},
        details={"source": "bundled binance", "timeframes": ["1h", "1d"]},
    )


def _series(bases: Sequence[str], *, as_of_ms: int) -> tuple[dict[str, _Series], dict[str, str]]:
    """The closed candles of every base with enough history, and why the others were left out."""
    available = set(bundled_bases())
    series: dict[str, _Series] = {}
    errors: dict[str, str] = {}
    for base in bases:
        symbol = f"{base}/USDT"
        if base not in available:
            errors[symbol] = "no bundled history"
            continue
        hourly, daily = closed(base, "1h", as_of_ms=as_of_ms), closed(base, "1d", as_of_ms=as_of_ms)
        if len(hourly) < HOURS_NEEDED or len(daily) < LOOKBACK_DAYS:
            errors[symbol] = f"under {HOURS_NEEDED} hours or {LOOKBACK_DAYS} days of history closed by {as_of_ms}"
            continue
        series[symbol] = _Series(hourly[-HOURS_NEEDED:], daily[-LOOKBACK_DAYS:])
    return series, errors


def _up_share(hourly: Sequence[Candle], hours: int) -> float:
    """Share of the non-overlapping ``hours``-hour moves of the last 24 hours that went up."""
    closes = [c.close for c in hourly][::-1][::hours][::-1]
    moves = [b > a for a, b in itertools.pairwise(closes)]
    return sum(moves) / len(moves)


def _ranks(values: Mapping[str, float]) -> dict[str, int]:
    ordered = sorted(values, key=lambda symbol: (-values[symbol], symbol))
    return {symbol: index for index, symbol in enumerate(ordered, start=1)}


def _by_horizon(series: Mapping[str, _Series], totals: Mapping[str, float]) -> dict[str, dict[str, HorizonScore]]:
    """Every symbol's score, rank, label and probability per horizon; the 1h horizon (its model is the unfitted
    prior, labels inactive) has no probability and every label HOLD, as the engine serves a horizon without an edge."""
    scores = {h: {s: _up_share(one.hourly, hours) for s, one in series.items()} for h, hours in HORIZON_HOURS.items()}
    scores[DEFAULT_HORIZON] = dict(totals)
    ranks = {h: _ranks(values) for h, values in scores.items()}
    return {
        symbol: {
            h: HorizonScore(
                score=scores[h][symbol],
                rank=ranks[h][symbol],
                label=Label.HOLD if h == "1h" else _label(scores[h][symbol]),
                probability_outperform=None if h == "1h" else 0.4 + 0.2 * scores[h][symbol],
            )
            for h in HORIZON_HOURS
        }
        for symbol in series
    }


def _models(series: Mapping[str, _Series]) -> dict[str, HorizonModel]:
    """One model per horizon described by the daily window the scores came from."""
    daily = next(iter(series.values())).daily
    start, end = ms_to_datetime(daily[0].open_time_ms), ms_to_datetime(daily[-1].open_time_ms)
    return {
        h: HorizonModel(
            horizon=h,
            candles=hours,
            weights={"drawdown": 0.5, "low_volatility": 0.5} if h == DEFAULT_HORIZON else {"reversal_1": 1.0},
            weights_source="fitted" if hours > 1 else "prior",
            fitted_at=end if hours > 1 else None,
            fit_start=start if hours > 1 else None,
            fit_end=end if hours > 1 else None,
            cross_sections=len(daily),
            walk_forward_ic=0.05 * hours if hours > 1 else None,
            walk_forward_t=2.5 if hours > 1 else None,
            calibration=((0.25, 0.45), (0.75, 0.55)) if hours > 1 else (),
            calibration_samples=len(daily) * len(series) if hours > 1 else 0,
            labels_active=hours > 1,
            note="" if hours > 1 else "labels are HOLD: prior weights, not fitted",
        )
        for h, hours in HORIZON_HOURS.items()
    }


def _ranked(series: Mapping[str, _Series]) -> tuple[Recommendation, ...]:
    unranked = [_recommendation(symbol, one) for symbol, one in series.items()]
    by_horizon = _by_horizon(series, {rec.symbol: rec.total_score for rec in unranked})
    ranked = sorted(unranked, key=lambda rec: rec.total_score, reverse=True)
    return tuple(
        dataclasses.replace(
            rec,
            rank=index,
            horizon=DEFAULT_HORIZON,
            probability_outperform=by_horizon[rec.symbol][DEFAULT_HORIZON].probability_outperform,
            calibration_samples=LOOKBACK_DAYS * len(series),  # the default horizon model's
            scores_by_horizon=by_horizon[rec.symbol],
        )
        for index, rec in enumerate(ranked, start=1)
    )


def build_snapshot(
    *,
    run_id: str | None = None,
    exchange: str = "binance",
    bases: Sequence[str] = SNAPSHOT_BASES,
    as_of_ms: int = SNAPSHOT_AS_OF_MS,
    generated_at: datetime | None = None,
) -> Snapshot:
    """A complete hourly snapshot of ``bases``/USDT from the real candles closed by ``as_of_ms``."""
    series, errors = _series(bases, as_of_ms=as_of_ms)
    if not series:
        raise ValueError(f"none of {list(bases)} has enough history closed by {as_of_ms}: {errors}")
    recs = _ranked(series)
    last_open_ms = max(one.hourly[-1].open_time_ms for one in series.values())
    return Snapshot(
        run_id=run_id or uuid.uuid4().hex,
        exchange=exchange,
        timeframe="1h",
        data_as_of=ms_to_datetime(last_open_ms + timeframe_ms("1h")),
        generated_at=generated_at or utc_now() - timedelta(seconds=1),
        universe_size=len(bases),
        recommendations=recs,
        levels={symbol: _support_levels(symbol, one) for symbol, one in series.items()},
        market=_market(recs),
        errors=errors,
        models=_models(series),
        default_horizon=DEFAULT_HORIZON,
    )
