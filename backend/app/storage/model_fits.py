"""The newest fitted model of each exchange and horizon (``model_fits``), written by the refit, read by the cycles.

Invariants:
- One row per (exchange, horizon): ``save`` upserts every given horizon (INSERT ... ON CONFLICT DO UPDATE), so the
  table always holds the newest fit; the refit saves all horizons of one fit in one transaction.
- The ``model`` column is the ``HorizonModel`` encoded by the generic codec (``to_jsonable``); ``load`` decodes it
  with ``decode(HorizonModel, ...)``. A row that does not decode (written by an incompatible version) is left out
  and logged as ``model_fit_unreadable``: the cycle serves the prior for that horizon until the next refit.
- ``fitted_at`` (aware UTC) is the model's own ``fitted_at``: the data clock the fit ran at. ``fitted_at_by_horizon``
  is the cheap check a cycle makes before deciding to decode the models again.
- The repository flushes, never commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import HorizonModel
from app.storage.codec import decode, to_jsonable
from app.storage.db import dialect_insert
from app.storage.models import ModelFitModel

log = structlog.get_logger(__name__)


class ModelRepository:
    """Reads and writes the ``model_fits`` table within the caller's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def save(self, *, exchange: str, models: Mapping[str, HorizonModel]) -> None:
        """Insert or replace the stored model of each horizon in ``models`` (every model needs ``fitted_at``)."""
        if not models:
            return
        rows = [
            {"exchange": exchange, "horizon": name, "fitted_at": _fitted_at(model), "model": to_jsonable(model)}
            for name, model in models.items()
        ]
        stmt = dialect_insert(self._session, ModelFitModel)
        stmt = stmt.on_conflict_do_update(
            index_elements=["exchange", "horizon"],
            set_={"fitted_at": stmt.excluded.fitted_at, "model": stmt.excluded.model},
        )
        self._session.execute(stmt, rows)
        self._session.flush()

    def fitted_at_by_horizon(self, *, exchange: str) -> dict[str, datetime]:
        """Horizon name -> ``fitted_at`` of every stored model of the exchange (one small query, nothing decoded)."""
        rows = self._session.execute(
            select(ModelFitModel.horizon, ModelFitModel.fitted_at).where(ModelFitModel.exchange == exchange)
        )
        return {horizon: fitted_at for horizon, fitted_at in rows}

    def load(self, *, exchange: str) -> dict[str, HorizonModel]:
        """Horizon name -> stored model of the exchange; rows that do not decode are left out (and logged)."""
        rows = self._session.execute(
            select(ModelFitModel.horizon, ModelFitModel.model).where(ModelFitModel.exchange == exchange)
        )
        models: dict[str, HorizonModel] = {}
        for horizon, payload in rows:
            try:
                models[horizon] = decode(HorizonModel, payload)
            except ValueError as exc:
                log.warning("model_fit_unreadable", exchange=exchange, horizon=horizon, error=str(exc))
        return models


def _fitted_at(model: HorizonModel) -> datetime:
    if model.fitted_at is None:
        raise ValueError(f"model of horizon {model.horizon} has no fitted_at: only fitted models are stored")
    return model.fitted_at
