"""Estimators over a plain sequence of floats, standard library only: the one implementation the analysis (numpy
callers) and the API (plain Python) share.

Invariants: non-finite values (NaN, infinities) are dropped first; "undefined" is ``None``, never NaN.
The Newey-West t statistic uses Bartlett weights ``1 - lag / (lags + 1)`` over ``lags`` lags (capped at n - 1) and
the variance estimator with divisor n; it is undefined below 3 values or for a non-positive variance.
``overlap_lags`` is the number of lags that covers the overlap of forward windows of ``horizon_s`` sampled every
``spacing_s``: ``ceil(horizon_s / spacing_s) - 1`` (h - 1 for h-candle returns sampled every candle).
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def finite(values: Iterable[float]) -> list[float]:
    """The finite values of ``values``, in order."""
    return [float(value) for value in values if math.isfinite(value)]


def newey_west_t(values: Iterable[float], *, lags: int) -> float | None:
    """t statistic of the mean of ``values`` (non-finite dropped) with a Newey-West (Bartlett) variance; None if
    undefined."""
    x = finite(values)
    n = len(x)
    if n < 3:
        return None
    mean = math.fsum(x) / n
    e = [value - mean for value in x]
    variance = math.fsum(v * v for v in e) / n
    for lag in range(1, min(lags, n - 1) + 1):
        autocovariance = math.fsum(a * b for a, b in zip(e[lag:], e[:-lag], strict=True)) / n
        variance += 2.0 * (1.0 - lag / (lags + 1.0)) * autocovariance
    if variance <= 0:
        return None
    return mean / math.sqrt(variance / n)


def overlap_lags(*, horizon_s: float, spacing_s: float) -> int:
    """Lags covering the overlap of forward windows ``horizon_s`` long that start every ``spacing_s`` (>= 0)."""
    if spacing_s <= 0 or horizon_s <= 0:
        return 0
    return max(0, math.ceil(horizon_s / spacing_s - 1e-9) - 1)
