"""The per-period outcome definitions on hand tables: forward returns, discontinuities, cross-section, top-N, levels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.analysis.outcomes import (
    BOUNCE_CANDLES,
    LevelOutcome,
    PriceSeries,
    cross_section,
    forward_return,
    information_coefficients,
    level_outcome,
    price_series,
    top_excess,
)
from app.domain import Candle

HOUR_MS = 3_600_000


def series_of(
    closes: list[float],
    *,
    missing: tuple[int, ...] = (),
    highs: list[float] | None = None,
    lows: list[float] | None = None,
) -> PriceSeries:
    """Hourly candles with these closes (high/low = close unless given), the rows in ``missing`` left out."""
    opens = [closes[0], *closes[:-1]]  # a 24/7 market opens where it closed
    candles = [
        Candle(i * HOUR_MS, opens[i], max((highs or closes)[i], opens[i]), min((lows or closes)[i], opens[i]), c, 1.0)
        for i, c in enumerate(closes)
        if i not in missing
    ]
    return price_series(candles, step_ms=HOUR_MS)


def test_forward_return_is_the_log_return_to_the_candle_h_later_and_delay_moves_the_entry() -> None:
    s = series_of([100.0, 110.0, 121.0, 99.0, 50.0])
    assert forward_return(s, 0, candles=2) == pytest.approx(math.log(1.21))
    assert forward_return(s, 0, candles=2, delay=1) == pytest.approx(math.log(99.0 / 110.0))
    assert math.isnan(forward_return(s, 3, candles=2))  # past the data


def test_a_missing_exit_candle_gives_nan_not_the_next_one() -> None:
    s = series_of([100.0, 110.0, 121.0, 130.0], missing=(2,))
    assert math.isnan(forward_return(s, 0, candles=2))  # the candle 2 hours later is missing
    assert forward_return(s, 0, candles=3) == pytest.approx(math.log(1.3))  # time, not rows: row 2 is 3 hours on


def test_a_window_holding_a_price_discontinuity_is_excluded() -> None:
    closes = [100.0, 101.0, 0.05, 0.051, 0.052]  # a 1:2000 redenomination inside row 2
    s = series_of(closes)
    assert s.breaks_before.tolist() == [0, 0, 1, 1, 1]
    assert math.isnan(forward_return(s, 0, candles=2)) and math.isnan(forward_return(s, 1, candles=1))
    assert forward_return(s, 0, candles=1) == pytest.approx(math.log(1.01))  # before the break: kept
    assert forward_return(s, 2, candles=2) == pytest.approx(math.log(1.04))  # after it: kept
    assert not series_of([1.0, 9.9, 1.0]).breaks_before.any()  # a factor below 10 in one candle is a market move


def test_cross_section_percentile_excess_and_median() -> None:
    out = cross_section(np.array([0.03, -0.01, math.nan, 0.01, 0.05]))
    assert out.percentile.tolist()[:2] == [pytest.approx(200 / 3), 0.0] and math.isnan(out.percentile[2])
    assert out.percentile[3:].tolist() == [pytest.approx(100 / 3), 100.0]
    assert out.excess[[0, 1, 3, 4]] == pytest.approx([0.01, -0.03, -0.01, 0.03])  # mean of the known is 0.02
    assert out.beats[[0, 1, 3, 4]].tolist() == [1.0, 0.0, 0.0, 1.0] and math.isnan(out.beats[2])


def test_top_excess_takes_the_best_scored_with_a_known_return() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.95])
    excess = np.array([0.02, 0.01, -0.01, -0.02, math.nan])
    assert top_excess(scores, excess, count=2) == pytest.approx(0.015)  # 0.95 has no return: 0.9 and 0.8
    assert math.isnan(top_excess(scores, excess, count=5))


def test_information_coefficients_per_signal_row() -> None:
    returns = np.array([0.1, 0.2, 0.3, 0.4, 0.5, math.nan])
    signals = np.array([[1, 2, 3, 4, 5, 6], [5, 4, 3, 2, 1, 0], [1, 3, 2, 5, 4, 9], [1, 2, math.nan, math.nan, 3, 4]])
    ics = information_coefficients(signals.astype(float), returns)
    assert ics[:3] == pytest.approx([1.0, -1.0, 0.8]) and math.isnan(ics[3])  # only three pairs in the last row


@pytest.mark.parametrize(
    ("touch_low", "bounce_close", "expected"),
    [
        (97.0, 101.0, LevelOutcome(touched=True, bounced=True)),
        (97.0, 96.0, LevelOutcome(touched=True, bounced=False)),
        (99.0, 101.0, LevelOutcome(touched=False, bounced=False)),
    ],
)
def test_support_touch_and_bounce(touch_low: float, bounce_close: float, expected: LevelOutcome) -> None:
    # entry row 0, window 2 (rows 1-2 may touch the support at 98); the bounce close is 3 rows after the touch (row 4)
    closes = [100.0, 100.0, 100.0, 100.0, bounce_close, 100.0]
    lows = [100.0, touch_low, 99.0, 99.0, min(99.0, bounce_close), 99.0]
    assert BOUNCE_CANDLES == 3
    s = series_of(closes, lows=lows)
    assert level_outcome(s, 0, price=98.0, support=True, window=2) == expected


def test_resistance_and_an_unjudgeable_reach() -> None:
    closes = [100.0, 100.0, 100.0, 99.0, 99.0, 99.0]
    s = series_of(closes, highs=[100.0, 103.0, 100.0, 99.0, 99.0, 99.0])
    assert level_outcome(s, 0, price=102.0, support=False, window=2) == LevelOutcome(touched=True, bounced=True)
    assert level_outcome(s, 1, price=102.0, support=False, window=2) is None  # the reach passes the data end
    broken = series_of([100.0, 100.0, 0.01, 0.01, 0.01, 0.01])
    assert level_outcome(broken, 0, price=99.0, support=True, window=2) is None  # a discontinuity inside
