"""The feed of published runs: which runs each exchange published, in publish order (the live stream's source).

Invariants:
- Only published runs (``published_at`` set) are ever returned; a run that was rolled back never appears.
- Order is ``(published_at, run_id)`` ascending within an exchange. An exchange's runs are published one at a time
  (one worker cycle per exchange holds the job gate), so this order is also their commit order.
- Reads only the run rows (no recommendation rows): each call is one indexed query on
  ``ix_analysis_runs_exchange_published_at``. The repository never writes; it runs on an ``app.storage.sql``
  connection (the API's, or a session's through ``app.storage.db.sql_connection``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.storage.sql import TABLES, SqlConnection


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


_SELECT = "SELECT run_id, exchange, data_as_of, published_at FROM analysis_runs WHERE published_at IS NOT NULL"


class RunFeedRepository:
    """Reads the published runs of exchanges on one connection."""

    def __init__(self, conn: SqlConnection) -> None:
        self._conn = conn

    def get(self, *, run_id: str) -> PublishedRun | None:
        """The published run ``run_id``, or None when it is unknown, unpublished or deleted by retention."""
        rows = self._runs(f"{_SELECT} AND run_id = :run_id", run_id=run_id)
        return rows[0] if rows else None

    def latest(self, *, exchange: str) -> PublishedRun | None:
        """The exchange's newest published run, or None before its first."""
        newest = self.newest(exchange=exchange, limit=1)
        return newest[0] if newest else None

    def newest(self, *, exchange: str, limit: int) -> list[PublishedRun]:
        """The exchange's ``limit`` newest published runs, oldest first."""
        rows = self._runs(
            f"{_SELECT} AND exchange = :exchange ORDER BY published_at DESC, run_id DESC LIMIT :limit",
            exchange=exchange,
            limit=limit,
        )
        return rows[::-1]

    def after(self, run: PublishedRun, *, limit: int) -> list[PublishedRun]:
        """At most ``limit`` runs of ``run``'s exchange published after it, oldest first."""
        published_at, run_id = run.position
        return self._runs(
            f"{_SELECT} AND exchange = :exchange"
            " AND (published_at > :published_at OR (published_at = :published_at AND run_id > :run_id))"
            " ORDER BY published_at, run_id LIMIT :limit",
            exchange=run.exchange,
            published_at=published_at,
            run_id=run_id,
            limit=limit,
        )

    def _runs(self, statement: str, **params: Any) -> list[PublishedRun]:
        rows = self._conn.rows(statement, table=TABLES["analysis_runs"], **params)
        assert all(row["data_as_of"] is not None for row in rows)  # set with published_at, by the same save
        return [
            PublishedRun(run_id=row["run_id"], exchange=row["exchange"], as_of=row["data_as_of"],
                         published_at=row["published_at"])
            for row in rows
        ]  # fmt: skip
