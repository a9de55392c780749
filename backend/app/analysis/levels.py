"""Support and resistance levels from clustered swing points.

Method (``calculation_method`` = ``swing_clusters_<timeframe>``, with ``_fallback`` when the analysis timeframe
stood in for a levels timeframe that had too few candles):
1. Swing lows and highs with ``k = 3``: bar ``i`` is a swing when it is the extreme of bars ``i-3 .. i+3``, so a
   swing is confirmed three bars later, the last three bars are never swings and appending candles never changes
   or removes a confirmed swing (no repainting).
2. Swings (lows and highs together) are sorted by price and clustered greedily: a swing joins the current cluster
   while it is within ``0.5 * ATR(14)`` (the ATR at the last candle) of the cluster's lowest member.
3. Each cluster is a ``Level``: price = volume-weighted mean of its swing prices (plain mean when the swing candles
   have no volume); touches = members; last_touched_at = open time of the latest member's candle (UTC);
   strength = 0.6 * (1 - 0.5 ** touches) + 0.4 * 0.5 ** (bars since last touch / 60), in [0, 1];
   kind = "support" if price < reference price else "resistance"; distance_pct relative to the reference price
   (the latest close the caller has, normally the analysis timeframe's last close).
4. Tiers: aggressive = the nearest level on that side, moderate = the second nearest, conservative = the
   strongest of the rest (ties: the farther one); ``None`` when that side has too few levels. Hence
   aggressive_support > moderate_support and aggressive_resistance < moderate_resistance.
``levels`` lists the ``MAX_LEVELS_PER_SIDE`` (10) nearest supports and resistances by price, highest first; the
tiers are chosen among those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.analysis import indicators as ind
from app.analysis.metrics import CandleArrays
from app.domain import Level, SupportLevels, ms_to_datetime

SWING_K = 3
LEVEL_ATR_PERIOD = 14
CLUSTER_ATR_MULTIPLE = 0.5
MIN_LEVEL_CANDLES = 30
RECENCY_HALF_LIFE_BARS = 60.0
TOUCH_WEIGHT, RECENCY_WEIGHT = 0.6, 0.4
MAX_LEVELS_PER_SIDE = 10


@dataclass(frozen=True, slots=True)
class Swing:
    """One confirmed swing point."""

    index: int
    price: float
    volume: float
    source: str  # "swing_low" | "swing_high"


def find_swings(arrays: CandleArrays, *, k: int = SWING_K) -> list[Swing]:
    """Confirmed swing lows and highs of a series, ordered by candle index."""
    points = ind.swing_points(arrays.high, arrays.low, k=k)
    swings = [Swing(int(i), float(arrays.low[i]), float(arrays.volume[i]), "swing_low") for i in points.lows]
    swings += [Swing(int(i), float(arrays.high[i]), float(arrays.volume[i]), "swing_high") for i in points.highs]
    return sorted(swings, key=lambda s: (s.index, s.source))


def cluster_swings(swings: Sequence[Swing], *, tolerance: float) -> list[list[Swing]]:
    """Groups of swings whose prices lie within ``tolerance`` of the group's lowest price, lowest group first."""
    clusters: list[list[Swing]] = []
    for swing in sorted(swings, key=lambda s: (s.price, s.index)):
        if clusters and swing.price - clusters[-1][0].price <= tolerance:
            clusters[-1].append(swing)
        else:
            clusters.append([swing])
    return clusters


def cluster_price(members: Sequence[Swing]) -> float:
    """Volume-weighted mean price of a cluster's swings (plain mean when they carry no volume)."""
    volume = sum(s.volume for s in members)
    if volume > 0:
        return sum(s.price * s.volume for s in members) / volume
    return sum(s.price for s in members) / len(members)


def _make_level(members: Sequence[Swing], *, price: float, arrays: CandleArrays, reference_price: float) -> Level:
    latest = max(s.index for s in members)
    age_bars = len(arrays) - 1 - latest
    strength = TOUCH_WEIGHT * (1 - 0.5 ** len(members)) + RECENCY_WEIGHT * 0.5 ** (age_bars / RECENCY_HALF_LIFE_BARS)
    return Level(
        price=price,
        kind="support" if price < reference_price else "resistance",
        strength=round(min(1.0, max(0.0, strength)), 4),
        sources=tuple(sorted({s.source for s in members})),
        touches=len(members),
        last_touched_at=ms_to_datetime(int(arrays.open_time_ms[latest])),
        distance_pct=round((price - reference_price) / reference_price * 100.0, 4),
    )


def _tiers(side: Sequence[Level], *, farther_is_lower: bool) -> tuple[float | None, float | None, float | None]:
    """(aggressive, moderate, conservative) prices from levels ordered nearest first."""
    aggressive = side[0].price if side else None
    moderate = side[1].price if len(side) > 1 else None
    rest = side[2:]
    if not rest:
        return aggressive, moderate, None
    strongest = max(rest, key=lambda lv: (lv.strength, -lv.price if farther_is_lower else lv.price))
    return aggressive, moderate, strongest.price


def support_levels(
    symbol: str, arrays: CandleArrays, *, reference_price: float, calculation_method: str
) -> SupportLevels:
    """Levels and the three tiers for one symbol from one series of candles (at least ``MIN_LEVEL_CANDLES``)."""
    atr = float(ind.atr(arrays.high, arrays.low, arrays.close, period=LEVEL_ATR_PERIOD)[-1])
    tolerance = CLUSTER_ATR_MULTIPLE * atr if np.isfinite(atr) else 0.0
    clusters = cluster_swings(find_swings(arrays), tolerance=tolerance)
    priced = sorted(((cluster_price(c), c) for c in clusters), key=lambda pair: pair[0])
    below = [pair for pair in reversed(priced) if pair[0] < reference_price][:MAX_LEVELS_PER_SIDE]
    above = [pair for pair in priced if pair[0] >= reference_price][:MAX_LEVELS_PER_SIDE]
    supports, resistances = (  # nearest first
        [_make_level(c, price=p, arrays=arrays, reference_price=reference_price) for p, c in side]
        for side in (below, above)
    )
    s_aggr, s_mod, s_cons = _tiers(supports, farther_is_lower=True)
    r_aggr, r_mod, r_cons = _tiers(resistances, farther_is_lower=False)
    return SupportLevels(
        symbol=symbol,
        aggressive_support=s_aggr,
        moderate_support=s_mod,
        conservative_support=s_cons,
        aggressive_resistance=r_aggr,
        moderate_resistance=r_mod,
        conservative_resistance=r_cons,
        calculation_method=calculation_method,
        data_points_count=len(arrays),
        levels=(*reversed(resistances), *supports),
    )
