"""Pivot points (classic, Fibonacci, Camarilla) of the previous UTC day and the previous UTC week (Monday start).

Invariants:
- Causal: the "current" period is the one containing ``as_of_ms`` (the close time of the latest candle used); the
  previous period is aggregated (high = max high, low = min low, close = the last close) from the candles whose open
  time falls in it and that closed at or before ``as_of_ms``. No candle in the previous period -> no pivots for it.
- The candles may be of any timeframe no longer than the period (1h or 1d candles for a day, 1h/1d for a week).
- Formulas (H, L, C of the previous period, R = H - L):
  classic P = (H + L + C) / 3, R1 = 2P - L, S1 = 2P - H, R2 = P + R, S2 = P - R, R3 = H + 2(P - L), S3 = L - 2(H - P);
  Fibonacci P as classic, R1/2/3 = P + 0.382/0.618/1.000 R, S1/2/3 = P - the same;
  Camarilla R1..R4 = C + R * 1.1/12, 1.1/6, 1.1/4, 1.1/2 and S1..S4 = C - the same.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
MONDAY_ANCHOR_MS = 4 * DAY_MS  # 1970-01-05, the first Monday after the epoch
PERIODS = {"day": (DAY_MS, 0), "week": (WEEK_MS, MONDAY_ANCHOR_MS)}
FIB_RATIOS = (0.382, 0.618, 1.0)
CAMARILLA_DIVISORS = (12.0, 6.0, 4.0, 2.0)


class PeriodHLC(NamedTuple):
    """High, low and close of one aggregated period."""

    high: float
    low: float
    close: float


def previous_period_start_ms(*, period: str, as_of_ms: int) -> int:
    """Open time of the UTC period (``period`` "day" or "week") before the one containing ``as_of_ms``."""
    length_ms, anchor_ms = PERIODS[period]
    current = (as_of_ms - anchor_ms) // length_ms
    return (current - 1) * length_ms + anchor_ms


def previous_period(
    open_time_ms: NDArray[np.int64],
    high: NDArray[np.float64],
    low: NDArray[np.float64],
    close: NDArray[np.float64],
    *,
    period: str,
    candle_ms: int,
    as_of_ms: int,
) -> PeriodHLC | None:
    """H, L, C of the UTC period before the one containing ``as_of_ms`` (``period`` "day" or "week")."""
    length_ms = PERIODS[period][0]
    start_ms = previous_period_start_ms(period=period, as_of_ms=as_of_ms)
    mask = (open_time_ms >= start_ms) & (open_time_ms < start_ms + length_ms) & (open_time_ms + candle_ms <= as_of_ms)
    if not mask.any():
        return None
    return PeriodHLC(float(high[mask].max()), float(low[mask].min()), float(close[mask][-1]))


def pivot_levels(hlc: PeriodHLC) -> dict[str, dict[str, float]]:
    """Classic, Fibonacci and Camarilla pivot prices by method and name (P, R1.., S1..)."""
    h, low, c = hlc
    p = (h + low + c) / 3.0
    r = h - low
    classic = {
        "P": p,
        "R1": 2 * p - low,
        "S1": 2 * p - h,
        "R2": p + r,
        "S2": p - r,
        "R3": h + 2 * (p - low),
        "S3": low - 2 * (h - p),
    }
    fibonacci = {"P": p}
    for index, ratio in enumerate(FIB_RATIOS, start=1):
        fibonacci[f"R{index}"] = p + ratio * r
        fibonacci[f"S{index}"] = p - ratio * r
    camarilla: dict[str, float] = {}
    for index, divisor in enumerate(CAMARILLA_DIVISORS, start=1):
        camarilla[f"R{index}"] = c + r * 1.1 / divisor
        camarilla[f"S{index}"] = c - r * 1.1 / divisor
    return {"classic": classic, "fibonacci": fibonacci, "camarilla": camarilla}
