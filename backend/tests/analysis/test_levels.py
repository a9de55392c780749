"""Levels: pivots (hand-checked), previous UTC day/week aggregation, volume profile, confluence merging."""

from __future__ import annotations

import numpy as np
import pytest

from app.analysis.levels import Candidates, merge_candidates
from app.analysis.pivots import DAY_MS, PeriodHLC, pivot_levels, previous_period
from app.analysis.profile import volume_profile

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


def test_confluence_merges_and_strengthens() -> None:
    swing = Candidates(np.array([100.0]), np.array([0.5]), np.array([3]), np.array([40]), [("swing_low",)])
    others = Candidates.of([(100.4, 0.4, ("pivot_day_classic_S1",)), (120.0, 0.35, ("volume_poc",))])
    supports, resistances = merge_candidates(swing + others, tolerance=1.0, reference_price=110.0, per_side=10)
    assert [m.price for m in supports] == [100.0] and [m.price for m in resistances] == [120.0]
    merged = supports[0]
    assert merged.strength == pytest.approx(1 - 0.5 * 0.6)
    assert merged.sources == ("pivot_day_classic_S1", "swing_low") and merged.touches == 3 and merged.last_index == 40
    assert resistances[0].touches == 0 and resistances[0].last_index == -1
