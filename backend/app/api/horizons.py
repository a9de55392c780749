"""The horizons a run serves, the ``horizon`` a request asks for, and a recommendation seen at one horizon.

Invariants:
- A run's served horizons are its models' names (``Snapshot.models``, in the run's order) that every recommendation
  has a score for; the default is ``Snapshot.default_horizon`` when served, else the first served one.
- A run published before per-horizon scores (migration 0003: no models, no ``scores_by_horizon``, empty
  ``default_horizon``) serves one horizon named by its timeframe (``1h``), whose score, rank and label are the legacy
  fields, with no model and no probability.
- At horizon h a recommendation's ``rank``, ``total_score``, ``label``, ``horizon``, ``probability_outperform`` and
  ``calibration_samples`` are h's (the samples from h's model); every other field is the run's (``details``,
  ``technical_score`` and ``volume_score`` describe the default horizon's composite).
- A requested name is checked in two steps: its form (``HORIZON_PATTERN``: ``deps.horizon_parameter`` or the
  bundle's body model, before anything is read), then against the run's served names (422 ``unknown_horizon``
  listing them).

Pure functions; no I/O.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from app.api.errors import ApiError
from app.domain import HorizonModel, HorizonScore, Recommendation, Snapshot

HORIZON_PATTERN = r"^[0-9]{1,6}[mhdw]$"  # a number of minutes, hours, days or weeks: 1h, 4h, 24h, 3d
HORIZON_FORM = re.compile(r"[0-9]{1,6}[mhdw]")  # the same, for ``fullmatch``
HORIZON_MAX_CHARS = 16
HORIZON_DESCRIPTION = (
    "a horizon the run serves (its names are listed in `horizons`, e.g. 1h, 4h, 24h); default: the run's default "
    "horizon. rank, total_score, recommendation_strength and the filters follow it"
)


@dataclass(frozen=True, slots=True)
class ServedHorizons:
    """The horizon names one run serves, its default, and whether the run predates per-horizon scores."""

    names: tuple[str, ...]
    default: str
    legacy: bool = False  # one horizon synthesised from the legacy fields, no model


def served_horizons(snapshot: Snapshot) -> ServedHorizons:
    """The horizons ``snapshot`` serves (computed once per run by the caller's memo)."""
    names = tuple(
        name for name in snapshot.models if all(name in rec.scores_by_horizon for rec in snapshot.recommendations)
    )
    if not names:
        legacy = snapshot.default_horizon or snapshot.timeframe
        return ServedHorizons(names=(legacy,), default=legacy, legacy=True)
    default = snapshot.default_horizon if snapshot.default_horizon in names else names[0]
    return ServedHorizons(names=names, default=default)


def pick_horizon(served: ServedHorizons, requested: str | None, *, snapshot: Snapshot) -> str:
    """The requested horizon (default: the run's); ApiError 422 ``unknown_horizon`` naming the served ones."""
    if requested is None:
        return served.default
    if requested in served.names:
        return requested
    raise ApiError(
        status_code=422,
        code="unknown_horizon",
        message=f"horizon {requested!r} is not served by run {snapshot.run_id} on {snapshot.exchange}; "
        f"served: {', '.join(served.names)} (default {served.default})",
    )


def at_horizon(rec: Recommendation, horizon: str, *, model: HorizonModel | None) -> Recommendation:
    """``rec`` with its legacy fields and probability taken from ``horizon`` (a served one)."""
    score = rec.scores_by_horizon.get(horizon)
    if score is None:  # a legacy run: its one horizon is the legacy fields
        score = HorizonScore(rec.total_score, rec.rank, rec.label, rec.probability_outperform)
        return dataclasses.replace(rec, horizon=horizon, scores_by_horizon={horizon: score})
    return dataclasses.replace(
        rec,
        rank=score.rank,
        total_score=score.score,
        label=score.label,
        horizon=horizon,
        probability_outperform=score.probability_outperform,
        calibration_samples=rec.calibration_samples if model is None else model.calibration_samples,
    )


def model_at(snapshot: Snapshot, horizon: str) -> HorizonModel | None:
    """The model of ``horizon`` with only its non-zero weights, or None (a legacy run has none)."""
    model = snapshot.models.get(horizon)
    if model is None:
        return None
    return dataclasses.replace(model, weights={name: w for name, w in model.weights.items() if w})
