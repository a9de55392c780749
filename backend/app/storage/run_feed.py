"""The feed of published runs: which runs each exchange published, in publish order (the live stream's source).

Invariants:
- Only published runs (``published_at`` set) are ever returned; a run that was rolled back never appears.
- Order is ``(published_at, run_id)`` ascending within an exchange. An exchange's runs are published one at a time
  (one worker cycle per exchange holds the job gate), so this order is also their commit order.
- Reads only the run rows (no recommendation rows): each call is one indexed query on
  ``ix_analysis_runs_exchange_published_at``. The repository never writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.storage.models import AnalysisRunModel


@dataclass(frozen=True, slots=True)
class PublishedRun:
    """One published run: what a ``run`` event of the stream says about it."""

    run_id: str
    exchange: str
    as_of: datetime  # close time of the last candle the run used
    published_at: datetime

    @property
    def position(self) -> tuple[datetime, str]:
        """The run's place in its exchange's feed (later runs compare greater)."""
        return self.published_at, self.run_id


_COLUMNS = (
    AnalysisRunModel.run_id,
    AnalysisRunModel.exchange,
    AnalysisRunModel.data_as_of,
    AnalysisRunModel.published_at,
)


def _run(run_id: str, exchange: str, as_of: datetime | None, published_at: datetime | None) -> PublishedRun:
    assert as_of is not None and published_at is not None  # set together when a run is published
    return PublishedRun(run_id=run_id, exchange=exchange, as_of=as_of, published_at=published_at)


class RunFeedRepository:
    """Reads the published runs of exchanges within the caller's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, *, run_id: str) -> PublishedRun | None:
        """The published run ``run_id``, or None when it is unknown, unpublished or deleted by retention."""
        row = self._session.execute(
            select(*_COLUMNS).where(AnalysisRunModel.run_id == run_id, AnalysisRunModel.published_at.is_not(None))
        ).one_or_none()
        return None if row is None else _run(*row)

    def latest(self, *, exchange: str) -> PublishedRun | None:
        """The exchange's newest published run, or None before its first."""
        newest = self.newest(exchange=exchange, limit=1)
        return newest[0] if newest else None

    def newest(self, *, exchange: str, limit: int) -> list[PublishedRun]:
        """The exchange's ``limit`` newest published runs, oldest first."""
        rows = self._session.execute(
            select(*_COLUMNS)
            .where(AnalysisRunModel.exchange == exchange, AnalysisRunModel.published_at.is_not(None))
            .order_by(AnalysisRunModel.published_at.desc(), AnalysisRunModel.run_id.desc())
            .limit(limit)
        ).all()
        return [_run(*row) for row in reversed(rows)]

    def after(self, run: PublishedRun, *, limit: int) -> list[PublishedRun]:
        """At most ``limit`` runs of ``run``'s exchange published after it, oldest first."""
        published_at, run_id = run.position
        rows = self._session.execute(
            select(*_COLUMNS)
            .where(
                AnalysisRunModel.exchange == run.exchange,
                AnalysisRunModel.published_at.is_not(None),
                or_(
                    AnalysisRunModel.published_at > published_at,
                    and_(AnalysisRunModel.published_at == published_at, AnalysisRunModel.run_id > run_id),
                ),
            )
            .order_by(AnalysisRunModel.published_at, AnalysisRunModel.run_id)
            .limit(limit)
        ).all()
        return [_run(*row) for row in rows]
