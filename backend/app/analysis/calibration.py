"""Calibration: from a score's cross-sectional percentile to the probability of beating the universe median.

Method (binned isotonic regression): out-of-sample pairs (percentile of the score in its cross-section, 1 if the
symbol's forward return beat that cross-section's median else 0) are put in ``bins`` equal-width percentile bins;
bins with fewer than ``min_per_bin`` pairs are merged into their neighbour; the bins' hit rates are then made
non-decreasing by pool-adjacent-violators (weighted by pair counts). Each bin becomes a knot (mean percentile of its
pairs, pooled hit rate); a percentile between knots is interpolated linearly, outside them it takes the end knot.
Pure functions; percentiles and probabilities are in [0, 1].
"""

from __future__ import annotations

import numpy as np

from app.analysis import indicators as ind

Knots = tuple[tuple[float, float], ...]


def _merge_small(sums: list[list[float]], *, min_count: float) -> list[list[float]]:
    """Bins as [count, sum of percentiles, hits]; a bin below ``min_count`` joins its right (last: left) neighbour."""
    merged = [list(b) for b in sums if b[0] > 0]
    index = 0
    while len(merged) > 1 and index < len(merged):
        if merged[index][0] >= min_count:
            index += 1
            continue
        other = index + 1 if index + 1 < len(merged) else index - 1
        merged[other] = [a + b for a, b in zip(merged[other], merged[index], strict=True)]
        del merged[index]
        index = min(index, other)
    return merged


def _pool_adjacent_violators(bins: list[list[float]]) -> list[list[float]]:
    """Merge neighbours until the hit rates (hits / count) never decrease."""
    stack: list[list[float]] = []
    for b in bins:
        stack.append(list(b))
        while len(stack) > 1 and stack[-2][2] / stack[-2][0] > stack[-1][2] / stack[-1][0]:
            last = stack.pop()
            stack[-1] = [a + c for a, c in zip(stack[-1], last, strict=True)]
    return stack


def calibrate(
    percentiles: ind.FloatArray,
    beat: ind.FloatArray,
    *,
    bins: int = 10,
    min_per_bin: int = 50,
    prior_pairs: float = 0.0,
) -> Knots:
    """Monotone knots ``((percentile, probability), ...)`` from out-of-sample pairs; () when there are too few.

    ``prior_pairs`` pseudo-pairs with a hit rate of 0.5 join every bin before pooling: overlapping forward returns
    (an h-candle return sampled every candle) make n pairs worth about n / h independent ones, so the model passes
    ``prior_pairs = pairs per unit × h`` and a bin's rate is shrunk towards 0.5 as much as its evidence is thin.
    """
    keep = np.isfinite(percentiles) & np.isfinite(beat)
    x, y = np.clip(percentiles[keep], 0.0, 1.0), beat[keep]
    if x.size < min_per_bin * 2:
        return ()
    index = np.minimum((x * bins).astype(int), bins - 1)
    sums = [
        [float(np.sum(index == b)), float(np.sum(x[index == b])), float(np.sum(y[index == b]))] for b in range(bins)
    ]
    merged = _merge_small(sums, min_count=min_per_bin)
    shrunk = [[n + prior_pairs, s * (n + prior_pairs) / n, h + 0.5 * prior_pairs] for n, s, h in merged]
    pooled = _pool_adjacent_violators(shrunk)
    return tuple((round(s / n, 6), round(h / n, 6)) for n, s, h in pooled)


def probability(knots: Knots, percentiles: ind.FloatArray) -> ind.FloatArray:
    """The calibrated probability at each percentile (NaN where there are no knots or the percentile is NaN)."""
    values = np.asarray(percentiles, dtype=np.float64)
    if not knots:
        return np.full(values.shape, np.nan)
    xs, ys = zip(*knots, strict=True)
    return np.where(np.isnan(values), np.nan, np.interp(values, xs, ys))
