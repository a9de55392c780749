"""Volume profile of a candle series: point of control and the 70 % value area.

Invariants:
- Each candle's volume is assigned to the bin of its typical price (high + low + close) / 3; ``PROFILE_BINS`` equal
  bins span the lowest low to the highest high of the candles given. Prices are bin centres.
- Point of control (POC) = the bin with the most volume (the lowest such bin on ties). The value area grows from
  the POC one bin at a time towards the neighbour with more volume (the upper one on ties) until it holds at least
  ``VALUE_AREA_SHARE`` (70 %) of the volume; VAH / VAL are the centres of its highest / lowest bins.
- A candle whose volume is unknown (NaN) adds no volume (``known_volume``); ``None`` when the candles carry no known
  volume or have no price range.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

PROFILE_BINS = 40
VALUE_AREA_SHARE = 0.70


class VolumeProfile(NamedTuple):
    """Point of control, value area high and value area low (prices)."""

    poc: float
    value_area_high: float
    value_area_low: float


def known_volume(volume: NDArray[np.float64]) -> NDArray[np.float64]:
    """``volume`` with unknown (non-finite) values as 0, for sums and weights that must stay finite."""
    return np.where(np.isfinite(volume), volume, 0.0)


def _value_area(hist: NDArray[np.float64], start: int) -> tuple[int, int]:
    low_bin = high_bin = start
    covered, target = hist[start], VALUE_AREA_SHARE * hist.sum()
    while covered < target:
        below = hist[low_bin - 1] if low_bin > 0 else -1.0
        above = hist[high_bin + 1] if high_bin < hist.size - 1 else -1.0
        if above >= below:
            high_bin += 1
            covered += above
        else:
            low_bin -= 1
            covered += below
    return low_bin, high_bin


def volume_profile(
    high: NDArray[np.float64], low: NDArray[np.float64], close: NDArray[np.float64], volume: NDArray[np.float64]
) -> VolumeProfile | None:
    """POC and 70 % value area of the candles given."""
    volume = known_volume(volume)
    bottom, top = float(low.min()), float(high.max())
    if not top > bottom or not volume.sum() > 0:
        return None
    typical = (high + low + close) / 3.0
    hist, edges = np.histogram(typical, bins=PROFILE_BINS, range=(bottom, top), weights=volume)
    centres = (edges[:-1] + edges[1:]) / 2.0
    poc_bin = int(np.argmax(hist))
    low_bin, high_bin = _value_area(hist.astype(np.float64), poc_bin)
    return VolumeProfile(float(centres[poc_bin]), float(centres[high_bin]), float(centres[low_bin]))
