"""Support and resistance levels: clustered swing points, the volume profile and daily / weekly pivot points.

Method (``calculation_method`` = ``levels_<timeframe>``, with ``_fallback`` when the analysis timeframe stood in for
a levels timeframe that had too few candles):
1. Swings with ``k = 3``: bar ``i`` is a swing when it is the extreme of bars ``i-3 .. i+3``, so a swing is
   confirmed three bars later and appending candles never changes or removes a confirmed swing (no repainting).
2. Swings (lows and highs together) are clustered greedily by price within ``0.5 * ATR(14)`` (ATR at the last
   candle) of the cluster's lowest member. A cluster's price is the volume-weighted mean of its swing prices, and
   its strength = 0.45 * (1 - 0.5 ** touches) + 0.30 * 0.5 ** (bars since last touch / 60)
   + 0.25 * v / (v + 1), v = mean volume of its swing candles / mean volume of the series (an unknown, NaN, volume
   counts 0 at a swing and is left out of the series mean, so a strength is never NaN).
3. More candidates: the volume profile's POC (strength 0.5) and value-area high / low (0.35) over the series, and
   the classic / Fibonacci / Camarilla pivots of the previous UTC day (0.25) and week (0.35) (``app.analysis.pivots``).
   The raw reference prices are served too, unmerged: ``SupportLevels.volume_profile`` (POC, VAH, VAL of the series)
   and ``SupportLevels.pivots`` (the previous UTC day's classic P, R1, R2, S1, S2 and its H, L, C).
4. All candidates are merged greedily by price within the same tolerance: the merged level takes the price of its
   strongest candidate, strength = 1 - prod(1 - s_i) (confluence makes a level stronger), the union of sources,
   the swing touches and the latest swing time (``last_touched_at`` None for a level no swing touched).
   kind = "support" if price < reference price else "resistance"; distance_pct is relative to the reference price
   (the analysis timeframe's last close).
5. Tiers, per side, among levels with strength >= ``TIER_MIN_STRENGTH`` (all levels of that side if none qualify),
   nearest first: aggressive = the nearest, moderate = the second nearest, conservative = the strongest of the rest
   (ties: the farther one); ``None`` when the side has too few levels.
``levels`` lists the ``MAX_LEVELS_PER_SIDE`` (10) nearest supports and resistances, highest price first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.analysis import indicators as ind
from app.analysis.pivots import PeriodHLC, pivot_levels, previous_period, previous_period_start_ms
from app.analysis.profile import VALUE_AREA_SHARE, VolumeProfile, known_volume, volume_profile
from app.analysis.symbol_indicators import CandleArrays
from app.domain import Level, PivotPoints, SupportLevels, VolumeProfileLevels, ms_to_datetime

SWING_K = 3
LEVEL_ATR_PERIOD = 14
CLUSTER_ATR_MULTIPLE = 0.5
MIN_LEVEL_CANDLES = 30
RECENCY_HALF_LIFE_BARS = 60.0
SWING_WEIGHTS = (0.45, 0.30, 0.25)  # touches, recency, volume at the level
PROFILE_STRENGTH = {"poc": 0.5, "value_area": 0.35}
PIVOT_STRENGTH = {"day": 0.25, "week": 0.35}
TIER_MIN_STRENGTH = 0.3
MAX_LEVELS_PER_SIDE = 10


@dataclass(frozen=True, slots=True)
class PivotInput:
    """The candles pivots are aggregated from, their length and the time the analysis stands at."""

    arrays: CandleArrays
    candle_ms: int
    as_of_ms: int


@dataclass(frozen=True, slots=True)
class Candidates:
    """Candidate levels before merging (swing clusters, profile prices, pivots) as parallel arrays."""

    price: ind.FloatArray
    strength: ind.FloatArray
    touches: NDArray[np.int64]
    last_index: NDArray[np.int64]  # -1 when no swing touched it
    sources: list[tuple[str, ...]]

    @staticmethod
    def of(rows: Sequence[tuple[float, float, tuple[str, ...]]]) -> Candidates:
        """Untouched candidates from (price, strength, sources) rows."""
        n = len(rows)
        return Candidates(
            np.array([r[0] for r in rows], dtype=np.float64),
            np.array([r[1] for r in rows], dtype=np.float64),
            np.zeros(n, dtype=np.int64),
            np.full(n, -1, dtype=np.int64),
            [r[2] for r in rows],
        )

    def __add__(self, other: Candidates) -> Candidates:
        return Candidates(
            np.concatenate((self.price, other.price)),
            np.concatenate((self.strength, other.strength)),
            np.concatenate((self.touches, other.touches)),
            np.concatenate((self.last_index, other.last_index)),
            self.sources + other.sources,
        )


@dataclass(frozen=True, slots=True)
class Merged:
    """One merged level before it becomes a ``Level``."""

    price: float
    strength: float
    sources: tuple[str, ...]
    touches: int
    last_index: int  # -1 when no swing touched it


def greedy_groups(sorted_prices: Sequence[float], *, tolerance: float) -> list[int]:
    """Group label of each ascending price: a price joins the current group while within ``tolerance`` of its first."""
    labels, first, label = [], -math.inf, -1
    for price in sorted_prices:
        if price - first > tolerance:
            first, label = price, label + 1
        labels.append(label)
    return labels


_SWING_SOURCES = {
    (False, True): ("swing_low",),
    (True, False): ("swing_high",),
    (True, True): ("swing_high", "swing_low"),
}


def swing_candidates(arrays: CandleArrays, *, tolerance: float) -> Candidates:
    """One candidate per swing cluster, scored by touches, recency and volume at the level."""
    points = ind.swing_points(arrays.high, arrays.low, k=SWING_K)
    index = np.concatenate((points.lows, points.highs))
    if index.size == 0:
        return Candidates.of([])
    price = np.concatenate((arrays.low[points.lows], arrays.high[points.highs]))
    is_high = np.concatenate((np.zeros(points.lows.size, bool), np.ones(points.highs.size, bool)))
    order = np.lexsort((index, price))
    volumes = known_volume(arrays.volume)
    index, price, is_high, volume = index[order], price[order], is_high[order], volumes[index[order]]
    labels = np.array(greedy_groups(price.tolist(), tolerance=tolerance))
    touches = np.bincount(labels)
    volume_sum = np.bincount(labels, weights=volume)
    safe_volume = np.where(volume_sum > 0, volume_sum, 1.0)
    price_mean = np.where(
        volume_sum > 0,
        np.bincount(labels, weights=price * volume) / safe_volume,
        np.bincount(labels, weights=price) / touches,
    )
    latest = np.full(touches.size, -1, dtype=np.int64)
    np.maximum.at(latest, labels, index)
    highs = np.bincount(labels, weights=is_high.astype(np.float64))
    known = np.isfinite(arrays.volume)
    mean_volume = float(arrays.volume[known].mean()) if known.any() else 0.0
    relative = volume_sum / touches / mean_volume if mean_volume > 0 else np.zeros(touches.size)
    recency = 0.5 ** ((len(arrays) - 1 - latest) / RECENCY_HALF_LIFE_BARS)
    w_touch, w_recent, w_volume = SWING_WEIGHTS
    strength = w_touch * (1 - 0.5**touches) + w_recent * recency + w_volume * relative / (relative + 1)
    sources = [_SWING_SOURCES[(h > 0, h < t)] for h, t in zip(highs.tolist(), touches.tolist(), strict=True)]
    return Candidates(price_mean, strength, touches.astype(np.int64), latest, sources)


def profile_candidates(vp: VolumeProfile | None) -> Candidates:
    """The volume profile's point of control and value-area bounds as candidates."""
    if vp is None:
        return Candidates.of([])
    return Candidates.of(
        [
            (vp.poc, PROFILE_STRENGTH["poc"], ("volume_poc",)),
            (vp.value_area_high, PROFILE_STRENGTH["value_area"], ("value_area_high",)),
            (vp.value_area_low, PROFILE_STRENGTH["value_area"], ("value_area_low",)),
        ]
    )


def previous_periods(source: PivotInput) -> dict[str, PeriodHLC]:
    """H, L, C of the previous UTC day and week (``PIVOT_STRENGTH``'s periods; one without closed candles left out)."""
    arrays = source.arrays
    found = {
        period: previous_period(
            arrays.open_time_ms,
            arrays.high,
            arrays.low,
            arrays.close,
            period=period,
            candle_ms=source.candle_ms,
            as_of_ms=source.as_of_ms,
        )
        for period in PIVOT_STRENGTH
    }
    return {period: hlc for period, hlc in found.items() if hlc is not None}


def pivot_candidates(periods: Mapping[str, PeriodHLC]) -> Candidates:
    """Classic, Fibonacci and Camarilla pivots of the previous UTC day and week as candidates."""
    rows: list[tuple[float, float, tuple[str, ...]]] = []
    for period, hlc in periods.items():
        strength = PIVOT_STRENGTH[period]
        for method, prices in pivot_levels(hlc).items():
            rows += [(p, strength, (f"pivot_{period}_{method}_{name}",)) for name, p in prices.items() if p > 0]
    return Candidates.of(rows)


def day_pivot_points(hlc: PeriodHLC | None, *, as_of_ms: int) -> PivotPoints | None:
    """The served pivots: the classic P, R1, R2, S1, S2 of the previous UTC day (``hlc``), None without that day."""
    if hlc is None:
        return None
    classic = pivot_levels(hlc)["classic"]
    return PivotPoints(
        period_start=ms_to_datetime(previous_period_start_ms(period="day", as_of_ms=as_of_ms)),
        high=hlc.high,
        low=hlc.low,
        close=hlc.close,
        pivot=classic["P"],
        r1=classic["R1"],
        r2=classic["R2"],
        s1=classic["S1"],
        s2=classic["S2"],
    )


def profile_levels(vp: VolumeProfile | None) -> VolumeProfileLevels | None:
    """The served volume profile: POC, value-area high and low and the value area's share of the volume."""
    if vp is None:
        return None
    return VolumeProfileLevels(vp.poc, vp.value_area_high, vp.value_area_low, value_area_share=VALUE_AREA_SHARE)


def merge_candidates(
    c: Candidates, *, tolerance: float, reference_price: float, per_side: int
) -> tuple[list[Merged], list[Merged]]:
    """Candidates within ``tolerance`` of a group's lowest price merged; the ``per_side`` nearest below and above."""
    if c.price.size == 0:
        return [], []
    order = np.lexsort((-c.strength, c.price))
    labels = np.array(greedy_groups(c.price[order].tolist(), tolerance=tolerance))
    groups = int(labels[-1]) + 1
    strength = np.minimum(c.strength[order], 1.0)
    combined = 1.0 - np.exp(np.bincount(labels, weights=np.log1p(-np.minimum(strength, 1.0 - 1e-12)), minlength=groups))
    by_strength = np.lexsort((c.price[order], -strength, labels))  # within a group: strongest, then lowest price
    first = np.searchsorted(labels[by_strength], np.arange(groups))
    price = c.price[order][by_strength[first]]
    touches = np.bincount(labels, weights=c.touches[order], minlength=groups)
    latest = np.full(groups, -1, dtype=np.int64)
    np.maximum.at(latest, labels, c.last_index[order])
    members: list[list[int]] = [[] for _ in range(groups)]
    for position, label in enumerate(labels.tolist()):
        members[label].append(int(order[position]))
    below = [int(g) for g in np.flatnonzero(price < reference_price)[::-1][:per_side]]
    above = [int(g) for g in np.flatnonzero(price >= reference_price)[:per_side]]

    def build(g: int) -> Merged:
        sources = tuple(sorted({source for i in members[g] for source in c.sources[i]}))
        return Merged(float(price[g]), float(combined[g]), sources, int(touches[g]), int(latest[g]))

    return [build(g) for g in below], [build(g) for g in above]


def _make_level(candidate: Merged, *, arrays: CandleArrays, reference_price: float) -> Level:
    last = candidate.last_index if candidate.last_index >= 0 else None
    return Level(
        price=candidate.price,
        kind="support" if candidate.price < reference_price else "resistance",
        strength=round(min(1.0, max(0.0, candidate.strength)), 4),
        sources=candidate.sources,
        touches=candidate.touches,
        last_touched_at=None if last is None else ms_to_datetime(int(arrays.open_time_ms[last])),
        distance_pct=round((candidate.price - reference_price) / reference_price * 100.0, 4),
    )


def _tiers(side: Sequence[Level], *, farther_is_lower: bool) -> tuple[float | None, float | None, float | None]:
    """(aggressive, moderate, conservative) prices from levels ordered nearest first."""
    strong = [lv for lv in side if lv.strength >= TIER_MIN_STRENGTH] or list(side)
    aggressive = strong[0].price if strong else None
    moderate = strong[1].price if len(strong) > 1 else None
    rest = strong[2:]
    if not rest:
        return aggressive, moderate, None
    strongest = max(rest, key=lambda lv: (lv.strength, -lv.price if farther_is_lower else lv.price))
    return aggressive, moderate, strongest.price


def support_levels(
    symbol: str,
    arrays: CandleArrays,
    *,
    reference_price: float,
    calculation_method: str,
    pivots: PivotInput | None = None,
    atr: float | None = None,
) -> SupportLevels:
    """Levels and tiers for one symbol from one series (>= ``MIN_LEVEL_CANDLES``); ``atr``: its ATR14 if known."""
    if atr is None:
        atr = float(ind.atr(arrays.high, arrays.low, arrays.close, period=LEVEL_ATR_PERIOD)[-1])
    tolerance = CLUSTER_ATR_MULTIPLE * atr if np.isfinite(atr) else 0.0
    profile = volume_profile(arrays.high, arrays.low, arrays.close, arrays.volume)
    periods = {} if pivots is None else previous_periods(pivots)
    candidates = swing_candidates(arrays, tolerance=tolerance) + profile_candidates(profile)
    candidates += pivot_candidates(periods)
    below, above = merge_candidates(
        candidates, tolerance=tolerance, reference_price=reference_price, per_side=MAX_LEVELS_PER_SIDE
    )
    supports, resistances = (  # nearest first
        [_make_level(c, arrays=arrays, reference_price=reference_price) for c in side] for side in (below, above)
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
        pivots=None if pivots is None else day_pivot_points(periods.get("day"), as_of_ms=pivots.as_of_ms),
        volume_profile=profile_levels(profile),
    )
