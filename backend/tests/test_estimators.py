"""``app.estimators``: the standard-library Newey-West t (shared by the analysis and the API) and the overlap lags."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.analysis.statistics import newey_west_t as numpy_newey_west_t
from app.estimators import newey_west_t, overlap_lags


def _by_hand(values: list[float], lags: int) -> float:
    n = len(values)
    mean = sum(values) / n
    e = [v - mean for v in values]
    variance = sum(v * v for v in e) / n
    for lag in range(1, min(lags, n - 1) + 1):  # lags beyond the data are cut; the weights keep ``lags``
        variance += 2 * (1 - lag / (lags + 1)) * sum(e[i] * e[i - lag] for i in range(lag, n)) / n
    return mean / math.sqrt(variance / n)


def test_newey_west_t_matches_the_formula_and_drops_non_finite_values() -> None:
    values = [0.1, 0.3, 0.2, 0.4, 0.0, 0.2, -0.1, 0.25]
    for lags in (0, 1, 3):
        assert newey_west_t(values, lags=lags) == pytest.approx(_by_hand(values, lags), rel=1e-12)
    assert newey_west_t([*values, math.nan, math.inf], lags=2) == pytest.approx(_by_hand(values, 2), rel=1e-12)
    assert newey_west_t(values[:4], lags=50) == pytest.approx(_by_hand(values[:4], 50), rel=1e-12)


def test_newey_west_t_is_undefined_below_three_values_or_without_variance() -> None:
    assert newey_west_t([1.0, math.nan, 2.0], lags=0) is None
    assert newey_west_t([0.5, 0.5, 0.5, 0.5], lags=1) is None


def test_the_analysis_delegates_to_the_one_implementation() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(0.02, 0.1, 200)
    values[::17] = np.nan
    expected = newey_west_t([float(v) for v in values], lags=5)
    assert numpy_newey_west_t(values, lags=5) == expected
    assert numpy_newey_west_t(values.reshape(20, 10), lags=5) == expected  # any shape, flattened in order


@pytest.mark.parametrize(
    ("horizon_s", "spacing_s", "lags"),
    [
        (3600, 3600, 0),
        (4 * 3600, 3600, 3),
        (24 * 3600, 3600, 23),
        (4 * 3600, 4 * 3600, 0),
        (3600, 4 * 3600, 0),
        (4 * 3600, 1800, 7),
        (3600, 0, 0),
    ],
)
def test_overlap_lags(horizon_s: float, spacing_s: float, lags: int) -> None:
    assert overlap_lags(horizon_s=horizon_s, spacing_s=spacing_s) == lags
