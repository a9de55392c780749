"""Cross-sectional statistics shared by the model fit, ``dantaro evaluate`` and the track record.

Invariants: pure functions of their arrays; rows are cross-sections (one time, many symbols); a pair is used only
when both values are finite; a row with fewer than ``min_symbols`` pairs, or a constant side, gives NaN.
The Newey-West t statistic (``app.estimators``) uses Bartlett weights over ``lags`` lags, the standard correction for
the overlap of h-candle forward returns sampled every candle (lags = h - 1).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from app import estimators
from app.analysis import indicators as ind

MIN_SYMBOLS = 5


def _paired_ranks(x: ind.FloatArray, y: ind.FloatArray) -> tuple[ind.FloatArray, ind.FloatArray]:
    both = np.isfinite(x) & np.isfinite(y)
    rx = pd.DataFrame(np.where(both, x, np.nan)).rank(axis=1).to_numpy()
    ry = pd.DataFrame(np.where(both, y, np.nan)).rank(axis=1).to_numpy()
    return rx, ry


def row_ic(scores: ind.FloatArray, returns: ind.FloatArray, *, min_symbols: int = MIN_SYMBOLS) -> ind.FloatArray:
    """Spearman rank correlation of each row's scores and returns (average ranks for ties)."""
    x, y = np.atleast_2d(scores), np.atleast_2d(returns)
    rx, ry = _paired_ranks(x, y)
    count = np.sum(np.isfinite(rx), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = rx - np.nanmean(rx, axis=1, keepdims=True)
        dy = ry - np.nanmean(ry, axis=1, keepdims=True)
        numerator = np.nansum(dx * dy, axis=1)
        denominator = np.sqrt(np.nansum(dx * dx, axis=1) * np.nansum(dy * dy, axis=1))
        ic = numerator / denominator
    return np.where((count >= min_symbols) & (denominator > 0), ic, np.nan)


def row_percentiles(values: ind.FloatArray) -> ind.FloatArray:
    """Each value's average rank in its row mapped to [0, 1] (lowest 0, highest 1, a lone value 0.5)."""
    matrix = np.atleast_2d(np.asarray(values, dtype=np.float64))
    ranks = pd.DataFrame(matrix).rank(axis=1).to_numpy()
    counts = np.sum(~np.isnan(matrix), axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(counts > 1, (ranks - 1.0) / (counts - 1.0), 0.5)
    return np.where(np.isnan(matrix), np.nan, scaled)


def beats_median(returns: ind.FloatArray) -> ind.FloatArray:
    """1 where a return is above its row's median, 0 where not, NaN where the return is unknown."""
    matrix = np.atleast_2d(returns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row has no median: NaN, as wanted
        median = np.nanmedian(matrix, axis=1, keepdims=True)
    return np.where(np.isfinite(matrix), (matrix > median).astype(np.float64), np.nan)


def newey_west_t(values: ind.FloatArray, *, lags: int) -> float | None:
    """t statistic of the mean of ``values`` (NaN dropped) with a Newey-West (Bartlett) variance; None if undefined
    (``app.estimators.newey_west_t``, the one implementation, shared with the API)."""
    return estimators.newey_west_t(np.asarray(values, dtype=np.float64).ravel().tolist(), lags=lags)
