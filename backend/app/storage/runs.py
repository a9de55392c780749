"""Analysis runs and their published snapshots.

Invariants:
- A run is written by ``start`` (status running), then ``save_snapshot`` (its rows, ``published_at``) and
  ``finish`` in the publisher's single transaction; readers only ever look at runs with ``published_at`` set,
  and a published run's rows were written in the same transaction, so no reader sees half a run.
- ``latest_snapshot`` rebuilds exactly the ``Snapshot`` that was saved (recommendations ordered by rank).
- Rows and domain objects convert generically, with no per-field code: ``codec.to_columns`` writes a dataclass's
  fields as columns (``ROW_MODELS``), ``codec.decode`` rebuilds the ``Snapshot`` from the rows' columns (a run whose
  rows do not decode raises ``ValueError``).
- All datetimes are aware UTC. The repository flushes, never commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import MarketStatus, Recommendation, RunStatus, Snapshot, SupportLevels, utc_now
from app.storage.codec import decode, to_columns
from app.storage.models import (
    AnalysisRunModel,
    Base,
    MarketStatusModel,
    RecommendationModel,
    SupportLevelsModel,
)

# Where each domain object is stored: its fields are the columns of one row per item (keyed by run_id); nested
# values (tuples, mappings, Levels) live in JSON columns. The Snapshot's own fields are columns of its run row,
# except SNAPSHOT_PARTS, stored as rows of their own tables. tests/storage/test_row_mapping.py checks every field
# has its column, so adding a field takes the domain field, the model column and a migration.
ROW_MODELS: Mapping[type, type[Base]] = {
    Snapshot: AnalysisRunModel,
    Recommendation: RecommendationModel,
    SupportLevels: SupportLevelsModel,
    MarketStatus: MarketStatusModel,
}
SNAPSHOT_PARTS = ("recommendations", "levels", "market")


class RunNotFoundError(LookupError):
    """The run id is not in ``analysis_runs``."""


class RunRepository:
    """Reads and writes analysis runs within the caller's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def start(self, *, run_id: str, exchange: str, started_at: datetime) -> None:
        """Record a new running run."""
        self._session.add(
            AnalysisRunModel(run_id=run_id, exchange=exchange, status=RunStatus.RUNNING.value, started_at=started_at)
        )
        self._session.flush()

    def finish(
        self,
        *,
        run_id: str,
        status: RunStatus,
        finished_at: datetime,
        symbols_total: int,
        symbols_ok: int,
        symbols_failed: int,
        error: str | None,
        errors: Mapping[str, str],
    ) -> None:
        """Record how a run ended; ``RunNotFoundError`` if it was never started."""
        run = self._get(run_id)
        run.status = RunStatus(status).value
        run.finished_at = finished_at
        run.symbols_total = symbols_total
        run.symbols_ok = symbols_ok
        run.symbols_failed = symbols_failed
        run.error = error
        run.errors = dict(errors)
        self._session.flush()

    def save_snapshot(self, snapshot: Snapshot, *, published_at: datetime | None = None) -> None:
        """Write the snapshot's rows and mark its run published (creating the run row if it was not started)."""
        run = self._session.get(AnalysisRunModel, snapshot.run_id)
        if run is None:
            run = AnalysisRunModel(
                run_id=snapshot.run_id,
                exchange=snapshot.exchange,
                status=RunStatus.RUNNING.value,
                started_at=snapshot.generated_at,
            )
            self._session.add(run)
        elif run.exchange != snapshot.exchange:
            raise ValueError(f"run {snapshot.run_id} belongs to {run.exchange}, not {snapshot.exchange}")
        for name, value in to_columns(snapshot, exclude=SNAPSHOT_PARTS).items():
            setattr(run, name, value)
        run.published_at = published_at or utc_now()
        self._session.flush()
        self._session.add_all(_snapshot_rows(snapshot))
        self._session.flush()

    def latest_snapshot(self, *, exchange: str) -> Snapshot | None:
        """The newest published snapshot of the exchange, or None."""
        run = self._session.execute(
            select(AnalysisRunModel)
            .where(AnalysisRunModel.exchange == exchange, AnalysisRunModel.published_at.is_not(None))
            .order_by(AnalysisRunModel.published_at.desc(), AnalysisRunModel.run_id.desc())
            .limit(1)
        ).scalar_one_or_none()
        return None if run is None else self._rebuild(run)

    def published_snapshot(self, *, run_id: str) -> Snapshot | None:
        """The snapshot the run published, or None when the run is unknown or was not published."""
        run = self._session.get(AnalysisRunModel, run_id)
        return None if run is None or run.published_at is None else self._rebuild(run)

    def latest_run_id(self, *, exchange: str, excluding: str | None = None) -> str | None:
        """The run id of the newest published snapshot of the exchange (other than ``excluding``), or None."""
        stmt = select(AnalysisRunModel.run_id).where(
            AnalysisRunModel.exchange == exchange, AnalysisRunModel.published_at.is_not(None)
        )
        if excluding is not None:
            stmt = stmt.where(AnalysisRunModel.run_id != excluding)
        return self._session.execute(
            stmt.order_by(AnalysisRunModel.published_at.desc(), AnalysisRunModel.run_id.desc()).limit(1)
        ).scalar_one_or_none()

    def _get(self, run_id: str) -> AnalysisRunModel:
        run = self._session.get(AnalysisRunModel, run_id)
        if run is None:
            raise RunNotFoundError(f"analysis run {run_id!r} was never started")
        return run

    def _rebuild(self, run: AnalysisRunModel) -> Snapshot:
        session = self._session
        recommendations = session.execute(
            select(RecommendationModel)
            .where(RecommendationModel.run_id == run.run_id)
            .order_by(RecommendationModel.rank, RecommendationModel.symbol)
        ).scalars()
        levels = session.execute(select(SupportLevelsModel).where(SupportLevelsModel.run_id == run.run_id)).scalars()
        market = session.get_one(MarketStatusModel, run.run_id)
        row = _columns(run)
        row["recommendations"] = [_columns(item) for item in recommendations]
        row["levels"] = {item.symbol: _columns(item) for item in levels}
        row["market"] = _columns(market)
        try:
            return decode(Snapshot, row)
        except ValueError as exc:
            raise ValueError(f"published run {run.run_id} does not rebuild a snapshot: {exc}") from exc


def _columns(row: Base) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _snapshot_rows(snapshot: Snapshot) -> list[Base]:
    run_id = snapshot.run_id
    items: list[Any] = [*snapshot.recommendations, *snapshot.levels.values(), snapshot.market]
    return [ROW_MODELS[type(item)](run_id=run_id, **to_columns(item)) for item in items]
