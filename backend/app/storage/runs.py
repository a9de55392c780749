"""Analysis runs and their published snapshots.

Invariants:
- A run is written by ``start`` (status running), then ``save_snapshot`` (its rows, ``published_at``) and
  ``finish`` in the publisher's single transaction; readers only ever look at runs with ``published_at`` set,
  and a published run's rows were written in the same transaction, so no reader sees half a run.
- ``latest_snapshot`` rebuilds exactly the ``Snapshot`` that was saved (recommendations ordered by rank).
- Rows and domain objects convert generically, with no per-field code: ``codec.to_columns`` writes a dataclass's
  fields as columns (``ROW_MODELS``); the reads are ``app.storage.queries.runs`` (shared with the API), where
  ``codec.decode`` rebuilds the ``Snapshot`` from the rows' columns (a run whose rows do not decode raises
  ``ValueError``).
- All datetimes are aware UTC. The repository flushes, never commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.domain import MarketStatus, Recommendation, RunStatus, Snapshot, SupportLevels, utc_now
from app.storage.codec import to_columns
from app.storage.db import sql_connection
from app.storage.models import (
    AnalysisRunModel,
    Base,
    MarketStatusModel,
    RecommendationModel,
    SupportLevelsModel,
)
from app.storage.queries import runs as run_reads

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
        return run_reads.latest_snapshot(sql_connection(self._session), exchange=exchange)

    def published_snapshot(self, *, run_id: str) -> Snapshot | None:
        """The snapshot the run published, or None when the run is unknown or was not published."""
        return run_reads.published_snapshot(sql_connection(self._session), run_id=run_id)

    def latest_run_id(self, *, exchange: str, excluding: str | None = None) -> str | None:
        """The run id of the newest published snapshot of the exchange (other than ``excluding``), or None."""
        return run_reads.latest_run_id(sql_connection(self._session), exchange=exchange, excluding=excluding)

    def _get(self, run_id: str) -> AnalysisRunModel:
        run = self._session.get(AnalysisRunModel, run_id)
        if run is None:
            raise RunNotFoundError(f"analysis run {run_id!r} was never started")
        return run


def _snapshot_rows(snapshot: Snapshot) -> list[Base]:
    run_id = snapshot.run_id
    items: list[Any] = [*snapshot.recommendations, *snapshot.levels.values(), snapshot.market]
    return [ROW_MODELS[type(item)](run_id=run_id, **to_columns(item)) for item in items]
