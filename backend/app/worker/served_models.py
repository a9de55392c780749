"""Which stored models a cycle serves, when they are stale, and when a refit is due.

Invariants:
- A stored model is *usable* for a served horizon when it has the horizon's length in candles and matches the
  configured weights: a horizon pinned by ``DANTARO_FACTOR_WEIGHTS`` needs a ``configured`` model with those weights,
  an unpinned one a model that is not ``configured``. An unusable model is never served: the analysis gives that
  horizon the prior (labels HOLD, its note says why) and a refit is due.
- ``ServedModels.refresh`` asks the database only for each horizon's ``fitted_at`` (one small query per cycle) and
  decodes the models again only when that changed.
- A model fitted more than ``STALE_INTERVALS`` refit intervals before the cycle's ``now_ms`` is still served (its
  weights and labels unchanged) but its ``note`` says it is stale: the refit job has not stored a newer one.
- A refit is due (``refit_due``) when a served horizon has no usable stored model or the oldest usable one was fitted
  at least one refit interval before ``now_ms``.
Times: ``now_ms`` epoch milliseconds on the exchange's data clock (the replay's simulated clock), the clock
``fitted_at`` was taken on; ``refit_interval_s`` seconds on that clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from app.analysis.options import AnalysisOptions
from app.domain import HorizonModel, ms_to_datetime
from app.storage.model_fits import ModelRepository

STALE_INTERVALS = 3
WEIGHT_TOLERANCE = 1e-3  # stored weights are rounded to 4 decimals


def usable(model: HorizonModel, *, candles: int, pinned: Mapping[str, float] | None) -> bool:
    """Whether ``model`` may be served for a horizon of ``candles`` candles with these pinned weights (or none)."""
    if model.candles != candles:
        return False
    if pinned is None:
        return model.weights_source != "configured"
    names = set(pinned) | set(model.weights)
    same = all(abs(model.weights.get(n, 0.0) - pinned.get(n, 0.0)) <= WEIGHT_TOLERANCE for n in names)
    return model.weights_source == "configured" and same


def usable_models(stored: Mapping[str, HorizonModel], options: AnalysisOptions) -> dict[str, HorizonModel]:
    """The stored models that may be served for the configured horizons, by horizon name."""
    return {
        h.name: stored[h.name]
        for h in options.horizons
        if h.name in stored and usable(stored[h.name], candles=h.candles, pinned=options.pinned_weights.get(h.name))
    }


def refit_due(stored: Mapping[str, HorizonModel], options: AnalysisOptions, *, now_ms: int) -> str | None:
    """Why a refit is due at ``now_ms`` given the stored models, or None when they are current."""
    served = usable_models(stored, options)
    missing = [h.name for h in options.horizons if h.name not in served]
    if missing:
        return f"no usable stored model for {', '.join(missing)}"
    oldest = min(_fitted_at(model) for model in served.values())
    if ms_to_datetime(now_ms) - oldest >= timedelta(seconds=options.refit_interval_s):
        return f"the stored models were fitted at {oldest.isoformat()}, a refit interval ago or more"
    return None


def with_staleness(model: HorizonModel, *, now_ms: int, refit_interval_s: float) -> HorizonModel:
    """``model``, its note saying it is stale when it is older than ``STALE_INTERVALS`` refit intervals."""
    age = ms_to_datetime(now_ms) - _fitted_at(model)
    if age <= timedelta(seconds=STALE_INTERVALS * refit_interval_s):
        return model
    stale = (
        f"stale: fitted at {_fitted_at(model).isoformat()}, {age.total_seconds() / 3600:.0f} h before this run "
        f"(more than {STALE_INTERVALS} refit intervals)"
    )
    return replace(model, note=f"{model.note}; {stale}" if model.note else stale)


def _fitted_at(model: HorizonModel) -> datetime:
    return model.fitted_at or datetime.min.replace(tzinfo=UTC)  # stored models always carry one


class ServedModels:
    """The usable stored models of one exchange, reloaded when the refit stored newer ones."""

    def __init__(self, *, exchange: str, options: AnalysisOptions) -> None:
        self.exchange = exchange
        self.options = options
        self.models: dict[str, HorizonModel] = {}  # usable stored models by horizon name
        self._fitted_at: dict[str, datetime] = {}

    def refresh(self, session: Session) -> bool:
        """Reload the models when any stored ``fitted_at`` changed; True when they were reloaded."""
        repository = ModelRepository(session)
        fitted_at = repository.fitted_at_by_horizon(exchange=self.exchange)
        if fitted_at == self._fitted_at:
            return False
        self.models = usable_models(repository.load(exchange=self.exchange), self.options)
        self._fitted_at = fitted_at
        return True

    def at(self, now_ms: int) -> dict[str, HorizonModel]:
        """The models a run at ``now_ms`` serves (stale ones noted as such)."""
        interval_s = self.options.refit_interval_s
        return {
            name: with_staleness(model, now_ms=now_ms, refit_interval_s=interval_s)
            for name, model in self.models.items()
        }
