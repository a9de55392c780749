"""Levels: pivots (hand-checked tables), previous UTC day/week aggregation, volume profile and its value area (hand
tables), the served reference prices (pivots, POC/VAH/VAL) and their causality, confluence merging."""

from __future__ import annotations

import numpy as np
import pytest

from app.analysis.levels import Candidates, PivotInput, merge_candidates, support_levels
from app.analysis.pivots import DAY_MS, PeriodHLC, pivot_levels, previous_period
from app.analysis.profile import PROFILE_BINS, VALUE_AREA_SHARE, volume_profile
from app.analysis.symbol_indicators import CandleArrays
from app.domain import PivotPoints, VolumeProfileLevels, ms_to_datetime

HOUR_MS = 3_600_000
MONDAY_MS = 1_665_360_000_000  # 2022-10-10 00:00 UTC, a Monday


def test_pivots_hand_checked() -> None:
    p = pivot_levels(PeriodHLC(high=110.0, low=90.0, close=105.0))
    pivot = 305.0 / 3
    assert p["classic"]["P"] == pytest.approx(pivot)
    assert p["classic"]["R1"] == pytest.approx(2 * pivot - 90) and p["classic"]["S1"] == pytest.approx(2 * pivot - 110)
    assert p["classic"]["R3"] == pytest.approx(110 + 2 * (pivot - 90))
    assert p["fibonacci"]["R2"] == pytest.approx(pivot + 0.618 * 20)
    assert p["camarilla"]["R4"] == pytest.approx(105 + 20 * 1.1 / 2)
    assert p["camarilla"]["S3"] == pytest.approx(105 - 20 * 1.1 / 4)


# Classic floor pivots worked by hand: (H, L, C) -> (P, R1, R2, S1, S2).
CLASSIC_TABLE = [
    ((110.0, 90.0, 105.0), (305 / 3, 340 / 3, 365 / 3, 280 / 3, 245 / 3)),
    ((12.0, 6.0, 9.0), (9.0, 12.0, 15.0, 6.0, 3.0)),  # close mid-range: P is the mid-point, R1/S1 are H/L
    ((30.0, 20.0, 30.0), (80 / 3, 100 / 3, 110 / 3, 70 / 3, 50 / 3)),  # closed at the high
    ((50.0, 50.0, 50.0), (50.0, 50.0, 50.0, 50.0, 50.0)),  # no range: every line at the price
    ((4.0, 1.0, 1.0), (2.0, 3.0, 5.0, 0.0, -1.0)),  # a range wider than P puts S2 below zero
]


@pytest.mark.parametrize(("hlc", "expected"), CLASSIC_TABLE)
def test_classic_floor_pivots_table(hlc: tuple[float, float, float], expected: tuple[float, ...]) -> None:
    classic = pivot_levels(PeriodHLC(*hlc))["classic"]
    assert tuple(classic[name] for name in ("P", "R1", "R2", "S1", "S2")) == pytest.approx(expected)


def _hourly(start_ms: int, hours: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    times = start_ms + HOUR_MS * np.arange(hours, dtype=np.int64)
    base = np.arange(hours, dtype=np.float64) + 100.0
    return times, base + 1.0, base - 1.0, base


@pytest.mark.parametrize(
    ("as_of_offset_h", "period", "expected"),
    [
        (24 + 5, "day", (124.0, 99.0, 123.0)),  # Tuesday 05:00: Monday's 24 candles
        (24, "day", (124.0, 99.0, 123.0)),  # exactly midnight: the day just closed
        (23, "day", None),  # still Monday: Sunday has no candles here
        (7 * 24 + 1, "week", (268.0, 99.0, 267.0)),  # next Monday 01:00: the whole previous week
    ],
)
def test_previous_period_from_hourly(as_of_offset_h: int, period: str, expected: tuple[float, ...] | None) -> None:
    times, high, low, close = _hourly(MONDAY_MS, 8 * 24)
    as_of = MONDAY_MS + as_of_offset_h * HOUR_MS
    hlc = previous_period(times, high, low, close, period=period, candle_ms=HOUR_MS, as_of_ms=as_of)
    assert hlc == (None if expected is None else PeriodHLC(*expected))


def test_previous_day_from_daily_candles_ignores_unclosed() -> None:
    times = MONDAY_MS + DAY_MS * np.arange(3, dtype=np.int64)
    high, low, close = np.array([10.0, 20.0, 30.0]), np.array([5.0, 15.0, 25.0]), np.array([7.0, 17.0, 27.0])
    hlc = previous_period(times, high, low, close, period="day", candle_ms=DAY_MS, as_of_ms=MONDAY_MS + 2 * DAY_MS + 1)
    assert hlc == PeriodHLC(20.0, 15.0, 17.0)


def test_volume_profile_hand_table() -> None:
    # Typical prices 10.5, 20, 30 with volumes 1, 8, 1 over a 10..31 range: POC at the middle bin.
    high, low = np.array([11.0, 21.0, 31.0]), np.array([10.0, 19.0, 29.0])
    close, volume = np.array([10.5, 20.0, 30.0]), np.array([1.0, 8.0, 1.0])
    vp = volume_profile(high, low, close, volume)
    assert vp is not None and abs(vp.poc - 20.0) < 21.0 / 40
    assert vp.value_area_low <= vp.poc <= vp.value_area_high
    assert volume_profile(high, low, close, np.zeros(3)) is None


def _profile_input(volumes_by_price: dict[float, float]) -> tuple[np.ndarray, ...]:
    """Flat candles (H = L = C, typical price exact) at the given prices plus two volumeless ones at 0 and
    ``PROFILE_BINS`` that fix the range, so bin ``i`` spans [i, i + 1) and its centre is i + 0.5."""
    prices = [0.0, float(PROFILE_BINS), *volumes_by_price]
    volume = np.array([0.0, 0.0, *volumes_by_price.values()])
    price = np.array(prices)
    return price, price, price, volume


# Volume at bin centres -> (POC, VAH, VAL), worked by hand with the 70 % rule: start at the POC, add the neighbour bin
# with more volume (the upper one on ties) until the area holds 70 % of the total.
VALUE_AREA_TABLE = [
    # 50 at the POC, 20 either side: tie -> the upper one, 70 of 100 reached.
    ({10.5: 50, 11.5: 20, 9.5: 20, 12.5: 10}, (10.5, 11.5, 10.5)),
    # the lower neighbour has more (25 > 20): 75 of 105 >= 73.5 after one step down.
    ({10.5: 50, 11.5: 20, 9.5: 25, 12.5: 10}, (10.5, 10.5, 9.5)),
    # empty bins around the POC tie at 0 and are crossed upwards until 30 more is held: 70 of 100.
    ({20.5: 40, 25.5: 30, 15.5: 30}, (20.5, 25.5, 20.5)),
    # the POC alone holds 70 %: a one-bin value area.
    ({5.5: 70, 30.5: 30}, (5.5, 5.5, 5.5)),
    # two bins tie for the most volume: the lower is the POC; 30 + 30 + 20 = 80 of 100 after two steps.
    ({7.5: 30, 8.5: 20, 9.5: 30, 33.5: 20}, (7.5, 9.5, 7.5)),
]


@pytest.mark.parametrize(("volumes", "expected"), VALUE_AREA_TABLE)
def test_value_area_table(volumes: dict[float, float], expected: tuple[float, float, float]) -> None:
    vp = volume_profile(*_profile_input(volumes))
    assert vp is not None and (vp.poc, vp.value_area_high, vp.value_area_low) == pytest.approx(expected)
    assert VALUE_AREA_SHARE == 0.70


def _daily_series(days: int, *, start_ms: int = MONDAY_MS) -> CandleArrays:
    """Daily candles with distinct, known H, L, C and volumes: day ``i`` trades 100 + i +- 2, closes at 100 + i + 1."""
    base = 100.0 + np.arange(days, dtype=np.float64)
    return CandleArrays(
        open_time_ms=start_ms + DAY_MS * np.arange(days, dtype=np.int64),
        open=base,
        high=base + 2.0,
        low=base - 2.0,
        close=base + 1.0,
        volume=1.0 + np.arange(days, dtype=np.float64) % 7,
    )


def _served(arrays: CandleArrays, *, as_of_ms: int) -> tuple[PivotPoints | None, VolumeProfileLevels | None]:
    levels = support_levels(
        "X/USDT",
        arrays,
        reference_price=float(arrays.close[-1]),
        calculation_method="levels_1d",
        pivots=PivotInput(arrays, candle_ms=DAY_MS, as_of_ms=as_of_ms),
    )
    return levels.pivots, levels.volume_profile


@pytest.mark.parametrize("hours_into_day", [0, 5, 23])
def test_served_pivots_come_from_the_last_closed_day_only(hours_into_day: int) -> None:
    arrays = _daily_series(40)
    as_of = int(arrays.open_time_ms[-1]) + DAY_MS + hours_into_day * HOUR_MS  # the last daily candle has closed
    pivots, profile = _served(arrays, as_of_ms=as_of)
    h, low, c = 139.0 + 2.0, 139.0 - 2.0, 139.0 + 1.0  # day 39: the last one closed by as_of
    p = (h + low + c) / 3
    assert pivots is not None and profile is not None
    assert pivots.period_start == ms_to_datetime(int(arrays.open_time_ms[-1]))
    served = [getattr(pivots, name) for name in ("high", "low", "close", "pivot", "r1", "r2", "s1", "s2")]
    assert served == pytest.approx([h, low, c, p, 2 * p - low, p + (h - low), 2 * p - h, p - (h - low)])
    reference = volume_profile(arrays.high, arrays.low, arrays.close, arrays.volume)
    assert reference is not None
    assert (profile.poc, profile.value_area_high, profile.value_area_low) == reference
    assert profile.value_area_share == VALUE_AREA_SHARE


def test_served_pivots_ignore_a_candle_that_has_not_closed() -> None:
    arrays = _daily_series(41)
    as_of = int(arrays.open_time_ms[-1]) + 6 * HOUR_MS  # day 40 is still open: the pivots are day 39's
    open_day = _served(arrays, as_of_ms=as_of)[0]
    closed_only = _served(arrays[:-1], as_of_ms=as_of)[0]
    assert open_day == closed_only and open_day is not None
    assert open_day.close == 140.0


def test_no_closed_previous_day_serves_no_pivots_and_no_volume_no_profile() -> None:
    arrays = _daily_series(40)
    gap_as_of = int(arrays.open_time_ms[-1]) + 3 * DAY_MS  # two days after the last candle: the day before is empty
    assert _served(arrays, as_of_ms=gap_as_of)[0] is None
    silent = CandleArrays(arrays.open_time_ms, arrays.open, arrays.high, arrays.low, arrays.close, arrays.volume * 0)
    assert _served(silent, as_of_ms=gap_as_of)[1] is None


def test_confluence_merges_and_strengthens() -> None:
    swing = Candidates(np.array([100.0]), np.array([0.5]), np.array([3]), np.array([40]), [("swing_low",)])
    others = Candidates.of([(100.4, 0.4, ("pivot_day_classic_S1",)), (120.0, 0.35, ("volume_poc",))])
    supports, resistances = merge_candidates(swing + others, tolerance=1.0, reference_price=110.0, per_side=10)
    assert [m.price for m in supports] == [100.0] and [m.price for m in resistances] == [120.0]
    merged = supports[0]
    assert merged.strength == pytest.approx(1 - 0.5 * 0.6)
    assert merged.sources == ("pivot_day_classic_S1", "swing_low") and merged.touches == 3 and merged.last_index == 40
    assert resistances[0].touches == 0 and resistances[0].last_index == -1
