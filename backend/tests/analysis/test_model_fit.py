"""The walk-forward fit on small hand-made histories: which weights it finds, the edge it measures, when it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from app.analysis import FactorHistory, FitSettings, fit_models
from app.analysis.factors import FACTOR_NAMES
from app.analysis.model_fit import fit_horizon, regress
from app.domain import Horizon, ms_to_datetime

HOUR_MS = 3_600_000
FITTED_AT = datetime(2022, 7, 1, tzinfo=UTC)
K = {name: k for k, name in enumerate(FACTOR_NAMES)}


def hand_made_history(*, rows: int = 240, columns: int = 12, seed: int = 7) -> FactorHistory:
    """``reversal_1`` ranks the next candle's return exactly (plus a little noise); ``rsi`` ranks it upside down;
    the other factors are random permutations."""
    rng = np.random.default_rng(seed)
    scores = np.stack([[rng.permutation(columns) / (columns - 1) for _ in range(rows)] for _ in FACTOR_NAMES])
    signal = scores[K["reversal_1"]]
    scores[K["rsi"]] = 1.0 - signal
    steps = 0.01 * (signal - 0.5) + rng.normal(0, 0.001, size=(rows, columns))
    log_close = np.vstack([np.zeros((1, columns)), np.cumsum(steps[:-1], axis=0)])
    return FactorHistory(
        open_time_ms=np.arange(rows, dtype=np.int64) * HOUR_MS,
        scores=scores,
        log_close=log_close,
        columns=tuple(f"S{i}/USDT" for i in range(columns)),
    )


SETTINGS = FitSettings(
    window_candles=200, min_cross_sections=50, calibration_min_per_bin=40, ridge=0.03, calibration_prior_pairs=0
)


def test_the_fit_finds_the_predictive_factor_and_measures_its_edge() -> None:
    history = hand_made_history()
    model = fit_horizon(history, Horizon("1h", 1), candle_ms=HOUR_MS, settings=SETTINGS, fitted_at=FITTED_AT)
    assert model.weights_source == "fitted" and model.labels_active and model.note == ""
    assert max(model.weights, key=lambda name: model.weights[name]) == "reversal_1"
    assert model.weights["reversal_1"] > 0.8 and model.weights["rsi"] == 0.0  # never turned upside down
    assert sum(model.weights.values()) == pytest.approx(1.0, abs=1e-3)
    assert model.walk_forward_ic is not None and model.walk_forward_ic > 0.9
    assert model.walk_forward_t is not None and model.walk_forward_t > 10
    assert model.cross_sections == 200  # the window: the newest 200 of the 239 rows with a closed return
    assert (model.fit_start, model.fit_end) == (ms_to_datetime(39 * HOUR_MS), ms_to_datetime(238 * HOUR_MS))
    probabilities = [p for _, p in model.calibration]
    assert probabilities == sorted(probabilities) and probabilities[0] < 0.2 and probabilities[-1] > 0.8
    assert model.calibration_samples == 4 * 40 * 12  # four scored blocks of 40 rows, 12 symbols each


def test_no_edge_means_labels_hold_and_says_why() -> None:
    history = hand_made_history()
    shuffled = np.random.default_rng(1).permuted(history.log_close, axis=1)  # returns unrelated to every factor
    noise = FactorHistory(history.open_time_ms, history.scores, shuffled, history.columns)
    model = fit_horizon(noise, Horizon("1h", 1), candle_ms=HOUR_MS, settings=SETTINGS, fitted_at=FITTED_AT)
    assert not model.labels_active and "no measured edge" in model.note


def test_too_little_history_uses_the_prior() -> None:
    settings = FitSettings(window_candles=300, min_cross_sections=500)
    model = fit_horizon(
        hand_made_history(), Horizon("4h", 4), candle_ms=HOUR_MS, settings=settings, fitted_at=FITTED_AT
    )
    assert model.weights_source == "prior" and not model.labels_active
    assert model.note.startswith("labels are HOLD: 236 cross-sections") and "500 are needed" in model.note
    assert model.weights["reversal_1"] > 0  # the short-horizon prior


def test_pinned_weights_are_measured_not_fitted() -> None:
    models = fit_models(
        hand_made_history(),
        (Horizon("1h", 1), Horizon("4h", 4)),
        candle_ms=HOUR_MS,
        settings=SETTINGS,
        fitted_at=FITTED_AT,
        pinned={"1h": {"rsi": 1.0}},
    )
    pinned, fitted = models["1h"], models["4h"]
    assert pinned.weights_source == "configured" and pinned.weights["rsi"] == 1.0
    assert pinned.walk_forward_ic is not None and pinned.walk_forward_ic < -0.9 and not pinned.labels_active
    assert fitted.weights_source == "fitted"


@pytest.mark.parametrize(
    ("prior", "ridge", "expected"),
    [
        ([0.0, 1.0], 0.0, [1.0, 0.0]),  # no ridge: the least-squares fit, the negative coefficient clipped to 0
        ([1.0, 1.0], 1e6, [0.5, 0.5]),  # huge ridge: the prior (its scale does not matter)
    ],
)
def test_regression_by_hand(prior: list[float], ridge: float, expected: list[float]) -> None:
    x = np.array([[1.0, 0.0], [-1.0, 0.5], [0.5, -1.0], [-0.5, 1.0]])
    y = x @ np.array([1.0, -0.3])  # y leans on the first column and against the second
    np.testing.assert_allclose(regress(x, y, prior=np.array(prior), ridge=ridge), expected, atol=1e-3)


def test_thin_evidence_shrinks_the_calibration_and_long_horizons_lean_on_the_prior() -> None:
    history = hand_made_history()
    loose = fit_horizon(history, Horizon("1h", 1), candle_ms=HOUR_MS, settings=SETTINGS, fitted_at=FITTED_AT)
    careful = FitSettings(window_candles=200, min_cross_sections=50, calibration_min_per_bin=40)  # the defaults
    shrunk = fit_horizon(history, Horizon("1h", 1), candle_ms=HOUR_MS, settings=careful, fitted_at=FITTED_AT)
    spread = [p for _, p in loose.calibration]
    narrowed = [p for _, p in shrunk.calibration]
    assert narrowed[0] > spread[0] and narrowed[-1] < spread[-1]  # pulled towards a coin flip
    assert all(abs(p - 0.5) < abs(q - 0.5) for p, q in zip(narrowed, spread, strict=True))
