"""Analysis runs and their published snapshots.

Invariants:
- A run is written by ``start`` (status running), then ``save_snapshot`` (its rows, ``published_at``) and
  ``finish`` in the publisher's single transaction; readers only ever look at runs with ``published_at`` set,
  and a published run's rows were written in the same transaction, so no reader sees half a run.
- ``latest_snapshot`` rebuilds exactly the ``Snapshot`` that was saved (recommendations ordered by rank).
- All datetimes are aware UTC. The repository flushes, never commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import RunStatus, Snapshot, utc_now
from app.storage.codec import (
    market_from_json,
    recommendation_from_json,
    support_levels_from_json,
    to_jsonable,
)
from app.storage.models import AnalysisRunModel, MarketStatusModel, RecommendationModel, SupportLevelsModel


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
        run.timeframe = snapshot.timeframe
        run.universe_size = snapshot.universe_size
        run.generated_at = snapshot.generated_at
        run.data_as_of = snapshot.data_as_of
        run.errors = dict(snapshot.errors)
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

    def latest_run_id(self, *, exchange: str) -> str | None:
        """The run id of the newest published snapshot of the exchange, or None."""
        return self._session.execute(
            select(AnalysisRunModel.run_id)
            .where(AnalysisRunModel.exchange == exchange, AnalysisRunModel.published_at.is_not(None))
            .order_by(AnalysisRunModel.published_at.desc(), AnalysisRunModel.run_id.desc())
            .limit(1)
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
        if run.generated_at is None or run.data_as_of is None or run.timeframe is None or run.universe_size is None:
            raise ValueError(f"published run {run.run_id} is missing its snapshot fields")
        return Snapshot(
            run_id=run.run_id,
            exchange=run.exchange,
            timeframe=run.timeframe,
            data_as_of=run.data_as_of,
            generated_at=run.generated_at,
            universe_size=run.universe_size,
            recommendations=tuple(recommendation_from_json(_columns(row)) for row in recommendations),
            levels={row.symbol: support_levels_from_json(_columns(row)) for row in levels},
            market=market_from_json(_columns(market)),
            errors=dict(run.errors or {}),
        )


def _columns(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _snapshot_rows(snapshot: Snapshot) -> list[Any]:
    run_id = snapshot.run_id
    rows: list[Any] = [
        RecommendationModel(run_id=run_id, **to_jsonable(recommendation)) for recommendation in snapshot.recommendations
    ]
    rows.extend(SupportLevelsModel(run_id=run_id, **to_jsonable(levels)) for levels in snapshot.levels.values())
    rows.append(MarketStatusModel(run_id=run_id, **to_jsonable(snapshot.market)))
    return rows
