"""Fitting each horizon's factor weights walk-forward, measuring their out-of-sample edge, and calibrating labels.

Method (docs/analysis.md §2):
- Sample: the newest ``window_candles`` cross-sections of the ``FactorHistory`` whose h-candle forward return had
  closed by the end of the history (row + h <= last row), each with at least ``min_symbols`` symbols.
- Regression: centred factor scores (score - 0.5, a missing factor 0) against the centred cross-sectional rank of
  the forward return, pooled over the sample; non-negative ridge towards the horizon's prior,
  ``min (1/n) |y - Xw|^2 + ridge |w - c p|^2, w >= 0`` (``c`` scales the prior to its own best fit), solved by
  coordinate descent. Weights are normalised to sum 1.
- Walk-forward inside the window: the sample is cut into ``blocks`` consecutive blocks; each block after the first is
  scored with weights fitted only on cross-sections whose forward returns closed before the block starts. Those
  out-of-sample scores give the fit's own IC (mean per cross-section, Newey-West t with h - 1 lags) and the pairs
  the calibration is fitted on (``app.analysis.calibration``).
- Labels are active only with a measured edge: walk-forward IC > 0 with t >= ``edge_min_t`` and a calibration.
- Fewer than ``min_cross_sections`` usable cross-sections: the prior weights are used, labels stay HOLD, and the
  model's ``note`` says so. Pinned (configured) weights skip the regression but are measured and calibrated the same.
Pure and causal: nothing after the history's last candle is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from app.analysis import indicators as ind
from app.analysis.calibration import calibrate
from app.analysis.factors import FACTOR_NAMES, composite, prior_weights
from app.analysis.panel import FactorHistory
from app.analysis.statistics import beats_median, newey_west_t, row_ic, row_percentiles
from app.domain import Horizon, HorizonModel, ms_to_datetime

WEIGHT_DECIMALS = 4


@dataclass(frozen=True, slots=True)
class FitSettings:
    """How much history a fit uses and what counts as a measured edge."""

    window_candles: int
    min_cross_sections: int
    ridge: float = 0.3  # the penalty is ridge * horizon_candles ** ridge_power: longer horizons lean on the prior
    ridge_power: float = 1.0
    calibration_prior_pairs: float = 300.0  # pseudo-pairs at 0.5 per bin, times the horizon's overlap (candles)
    blocks: int = 5
    min_symbols: int = 5
    edge_min_t: float = 2.0
    calibration_bins: int = 10
    calibration_min_per_bin: int = 50


def _nonnegative_ridge(gram: ind.FloatArray, moment: ind.FloatArray, *, sweeps: int = 200) -> ind.FloatArray:
    """argmin_w>=0 of w'Gw - 2 m'w by cyclic coordinate descent (G positive definite)."""
    w = np.zeros(moment.size)
    for _ in range(sweeps):
        before = w.copy()
        for k in range(w.size):
            residual = moment[k] - gram[k] @ w + gram[k, k] * w[k]
            w[k] = max(0.0, residual / gram[k, k])
        if np.max(np.abs(w - before)) < 1e-10:
            break
    return w


def _design(history: FactorHistory, rows: NDArray[np.intp]) -> ind.FloatArray:
    """Centred scores (rows x columns x factors), a missing factor 0."""
    return np.nan_to_num(np.moveaxis(history.scores[:, rows, :], 0, -1) - 0.5, nan=0.0)


def regress(x: ind.FloatArray, y: ind.FloatArray, *, prior: ind.FloatArray, ridge: float) -> ind.FloatArray:
    """Non-negative ridge weights of ``x`` (cells x factors) on ``y`` towards the scaled ``prior``; sum 1 or zeros."""
    n = y.size
    gram = x.T @ x / n
    moment = x.T @ y / n
    fitted_prior = x @ prior
    scale = max(0.0, float(fitted_prior @ y) / float(fitted_prior @ fitted_prior)) if fitted_prior.any() else 0.0
    w = _nonnegative_ridge(gram + ridge * np.eye(prior.size), moment + ridge * scale * prior)
    return w / w.sum() if w.sum() > 0 else w


@dataclass(frozen=True, slots=True)
class _Problem:
    """One horizon's fit: the history, its usable rows, their forward returns and rank targets, the prior."""

    history: FactorHistory
    horizon: Horizon
    rows: NDArray[np.intp]  # usable row indexes, ascending
    forward: ind.FloatArray  # (rows of the history x columns) forward log returns
    target: ind.FloatArray  # centred cross-sectional rank of the forward return
    prior: ind.FloatArray
    pinned: ind.FloatArray | None
    settings: FitSettings

    def weights(self, rows: NDArray[np.intp]) -> ind.FloatArray:
        """Pinned weights, else the regression on ``rows``; the prior when the fit finds nothing positive."""
        if self.pinned is not None:
            share: ind.FloatArray = self.pinned / self.pinned.sum()
            return share
        x, y = _design(self.history, rows), self.target[rows]
        cells = np.isfinite(y)
        ridge = self.settings.ridge * self.horizon.candles**self.settings.ridge_power
        fitted = regress(x[cells], y[cells], prior=self.prior, ridge=ridge)
        return fitted if fitted.any() else self.prior

    def scores(self, rows: NDArray[np.intp], weights: ind.FloatArray) -> ind.FloatArray:
        """The composite of ``rows`` with ``weights``."""
        by_name = {name: self.history.scores[k, rows, :] for k, name in enumerate(FACTOR_NAMES)}
        return composite(by_name, dict(zip(FACTOR_NAMES, weights, strict=True)))


def _problem(
    history: FactorHistory,
    horizon: Horizon,
    prior: ind.FloatArray,
    pinned: ind.FloatArray | None,
    settings: FitSettings,
) -> _Problem:
    forward = history.forward_returns(horizon.candles)
    usable = np.flatnonzero(np.sum(np.isfinite(forward), axis=1) >= settings.min_symbols)
    rows = usable[-settings.window_candles :]
    return _Problem(history, horizon, rows, forward, row_percentiles(forward) - 0.5, prior, pinned, settings)


def _walk_forward(problem: _Problem) -> tuple[ind.FloatArray, ind.FloatArray, ind.FloatArray]:
    """Per-cross-section out-of-sample IC, and the (percentile, beat-median) pairs of every scored cell."""
    ics, percentiles, beats = [], [], []
    for block in np.array_split(problem.rows, problem.settings.blocks)[1:]:
        train = problem.rows[problem.rows + problem.horizon.candles <= block[0]] if block.size else block
        if train.size == 0:
            continue
        scores = problem.scores(block, problem.weights(train))
        returns = problem.forward[block]
        ics.append(row_ic(scores, returns, min_symbols=problem.settings.min_symbols))
        percentiles.append(np.where(np.isfinite(returns), row_percentiles(scores), np.nan).ravel())
        beats.append(beats_median(returns).ravel())
    if not ics:
        return np.empty(0), np.empty(0), np.empty(0)
    return np.concatenate(ics), np.concatenate(percentiles), np.concatenate(beats)


def fit_horizon(
    history: FactorHistory,
    horizon: Horizon,
    *,
    candle_ms: int,
    settings: FitSettings,
    fitted_at: datetime,
    pinned: Mapping[str, float] | None = None,
) -> HorizonModel:
    """The weights, walk-forward IC and calibration of one horizon from ``history`` (see the module docstring)."""
    prior_map = prior_weights(candle_ms=candle_ms, horizon_candles=horizon.candles)
    prior = np.array([prior_map[name] for name in FACTOR_NAMES])
    pinned_vector = None if pinned is None else np.array([pinned.get(name, 0.0) for name in FACTOR_NAMES])
    problem = _problem(history, horizon, prior, pinned_vector, settings)
    if problem.rows.size < settings.min_cross_sections:
        return _unfitted(problem, pinned or prior_map, fitted_at=fitted_at, configured=pinned is not None)
    weights = problem.weights(problem.rows)
    ics, percentiles, beats = _walk_forward(problem)
    knots = calibrate(
        percentiles,
        beats,
        bins=settings.calibration_bins,
        min_per_bin=settings.calibration_min_per_bin,
        prior_pairs=settings.calibration_prior_pairs * horizon.candles,
    )
    finite = ics[np.isfinite(ics)]
    mean_ic = float(finite.mean()) if finite.size else None
    t_stat = newey_west_t(finite, lags=horizon.candles - 1)
    active = bool(knots) and mean_ic is not None and mean_ic > 0 and (t_stat or 0.0) >= settings.edge_min_t
    times = history.open_time_ms[problem.rows]
    return HorizonModel(
        horizon=horizon.name,
        candles=horizon.candles,
        weights=_rounded(weights),
        weights_source="configured" if pinned is not None else "fitted",
        fitted_at=fitted_at,
        fit_start=ms_to_datetime(int(times[0])),
        fit_end=ms_to_datetime(int(times[-1])),
        cross_sections=int(problem.rows.size),
        walk_forward_ic=None if mean_ic is None else round(mean_ic, 5),
        walk_forward_t=None if t_stat is None else round(t_stat, 3),
        calibration=knots,
        calibration_samples=int(np.isfinite(percentiles).sum()),
        labels_active=active,
        note="" if active else _no_edge_note(mean_ic, t_stat, bool(knots), settings),
    )


def _rounded(weights: ind.FloatArray) -> dict[str, float]:
    share = weights / weights.sum()
    return {name: round(float(w), WEIGHT_DECIMALS) for name, w in zip(FACTOR_NAMES, share, strict=True)}


def _no_edge_note(mean_ic: float | None, t_stat: float | None, calibrated: bool, settings: FitSettings) -> str:
    if not calibrated:
        return "labels are HOLD: too few out-of-sample pairs to calibrate probabilities"
    shown = "n/a" if mean_ic is None else f"{mean_ic:+.4f}"
    t_text = "n/a" if t_stat is None else f"{t_stat:.2f}"
    return f"labels are HOLD: no measured edge (walk-forward IC {shown}, t {t_text} < {settings.edge_min_t:g})"


def _unfitted(
    problem: _Problem, weights: Mapping[str, float], *, fitted_at: datetime, configured: bool
) -> HorizonModel:
    need, name = problem.settings.min_cross_sections, problem.horizon.name
    return HorizonModel(
        horizon=name,
        candles=problem.horizon.candles,
        weights={n: round(float(weights.get(n, 0.0)), WEIGHT_DECIMALS) for n in FACTOR_NAMES},
        weights_source="configured" if configured else "prior",
        fitted_at=fitted_at,
        cross_sections=int(problem.rows.size),
        note=(
            f"labels are HOLD: {problem.rows.size} cross-sections with a closed {name} forward return are stored, "
            f"{need} are needed to fit" + ("" if configured else "; prior weights used")
        ),
    )


def prior_model(horizon: Horizon, *, candle_ms: int, note: str) -> HorizonModel:
    """The unfitted model of a horizon: prior weights, no calibration, labels HOLD, ``note`` saying why."""
    weights = prior_weights(candle_ms=candle_ms, horizon_candles=horizon.candles)
    return HorizonModel(
        horizon=horizon.name,
        candles=horizon.candles,
        weights={name: round(weights[name], WEIGHT_DECIMALS) for name in FACTOR_NAMES},
        weights_source="prior",
        note=note,
    )


def fit_models(
    history: FactorHistory,
    horizons: tuple[Horizon, ...],
    *,
    candle_ms: int,
    settings: FitSettings,
    fitted_at: datetime,
    pinned: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, HorizonModel]:
    """One fitted model per horizon (``pinned`` maps a horizon name to configured weights)."""
    return {
        h.name: fit_horizon(
            history, h, candle_ms=candle_ms, settings=settings, fitted_at=fitted_at, pinned=(pinned or {}).get(h.name)
        )
        for h in horizons
    }
