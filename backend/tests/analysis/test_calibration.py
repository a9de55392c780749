"""Calibration (binned isotonic) and the cross-sectional statistics, on small hand-made tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.analysis.calibration import calibrate, probability
from app.analysis.statistics import beats_median, newey_west_t, row_ic, row_percentiles


def test_calibration_bins_pools_violators_and_interpolates() -> None:
    # 4 bins of 100 pairs; hit rates 0.3, 0.5, 0.4 (violates), 0.8 -> bins 2 and 3 pool to 0.45
    x = np.concatenate([np.full(100, 0.1), np.full(100, 0.3), np.full(100, 0.6), np.full(100, 0.9)])
    y = np.concatenate([np.arange(100) < 30, np.arange(100) < 50, np.arange(100) < 40, np.arange(100) < 80])
    knots = calibrate(x, y.astype(float), bins=4, min_per_bin=50)
    assert knots == ((0.1, 0.3), (0.45, 0.45), (0.9, 0.8))
    np.testing.assert_allclose(probability(knots, np.array([0.0, 0.1, 0.275, 0.9, 1.0, math.nan])),
                               [0.3, 0.3, 0.375, 0.8, 0.8, math.nan])  # fmt: skip


def test_small_bins_merge_into_their_neighbour() -> None:
    x = np.concatenate([np.full(10, 0.05), np.full(100, 0.5), np.full(100, 0.95)])
    y = np.concatenate([np.ones(10), np.arange(100) < 40, np.arange(100) < 70]).astype(float)
    knots = calibrate(x, y, bins=10, min_per_bin=50)
    # the 10 pairs at 0.05 (all hits) join the 0.5 bin: (10 + 40) / 110; then the 0.95 bin
    assert knots == ((round((0.05 * 10 + 0.5 * 100) / 110, 6), round(50 / 110, 6)), (0.95, 0.7))


def test_too_few_pairs_give_no_calibration() -> None:
    assert calibrate(np.full(20, 0.5), np.ones(20), min_per_bin=50) == ()
    assert np.isnan(probability((), np.array([0.5]))).all()


def test_row_statistics_by_hand() -> None:
    scores = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, math.nan, 4.0, 5.0]])
    returns = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]])
    np.testing.assert_allclose(row_ic(scores, returns), [1.0, -1.0, math.nan])  # the last row has 4 pairs < 5
    np.testing.assert_allclose(row_ic(scores, returns, min_symbols=4), [1.0, -1.0, 1.0])
    np.testing.assert_array_equal(row_percentiles(np.array([[3.0, 1.0, math.nan, 2.0]])), [[1.0, 0.0, math.nan, 0.5]])
    np.testing.assert_array_equal(beats_median(np.array([[0.1, 0.3, math.nan, 0.2, 0.4]])), [[0, 1, math.nan, 0, 1]])


def test_newey_west_t() -> None:
    values = np.array([0.1, 0.3, 0.2, 0.4, 0.0, 0.2])
    plain = values.mean() / (values.std() / math.sqrt(values.size))  # lag 0: the population-variance t
    assert newey_west_t(values, lags=0) == pytest.approx(plain)
    e = values - values.mean()
    lag1 = (e @ e + 2 * 0.5 * (e[1:] @ e[:-1])) / values.size
    assert newey_west_t(values, lags=1) == pytest.approx(values.mean() / math.sqrt(lag1 / values.size))
    assert newey_west_t(np.array([1.0, math.nan]), lags=0) is None


def test_prior_pairs_shrink_thin_evidence_towards_a_coin_flip() -> None:
    x = np.concatenate([np.full(100, 0.1), np.full(100, 0.9)])
    y = np.concatenate([np.arange(100) < 30, np.arange(100) < 80]).astype(float)
    # 100 pseudo-pairs at 0.5 per bin: (30 + 50) / 200 and (80 + 50) / 200; the percentiles are unchanged
    assert calibrate(x, y, bins=2, min_per_bin=50, prior_pairs=100) == ((0.1, 0.4), (0.9, 0.65))
    assert calibrate(x, y, bins=2, min_per_bin=50, prior_pairs=0) == ((0.1, 0.3), (0.9, 0.8))
