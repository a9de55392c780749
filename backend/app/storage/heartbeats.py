"""Worker heartbeats: one row per worker process, upserted on every beat.

Invariants: datetimes are aware UTC; ``latest`` returns plain values (usable after the session closes), newest
beat first. The repository flushes, never commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.domain import utc_now
from app.storage.db import dialect_insert, sql_connection
from app.storage.models import WorkerHeartbeatModel
from app.storage.queries.heartbeats import HeartbeatRow, latest_heartbeats

__all__ = ["HeartbeatRepository", "HeartbeatRow"]


class HeartbeatRepository:
    """Reads and writes ``worker_heartbeats`` within the caller's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def beat(
        self,
        *,
        worker_id: str,
        hostname: str,
        pid: int,
        started_at: datetime,
        state: str,
        current_run_id: str | None,
        beat_at: datetime | None = None,
    ) -> None:
        """Insert or update the worker's row with this beat (``beat_at`` defaults to now)."""
        values = {
            "worker_id": worker_id,
            "hostname": hostname,
            "pid": pid,
            "started_at": started_at,
            "last_beat_at": beat_at or utc_now(),
            "state": state,
            "current_run_id": current_run_id,
        }
        stmt = dialect_insert(self._session, WorkerHeartbeatModel).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["worker_id"], set_={key: stmt.excluded[key] for key in values if key != "worker_id"}
        )
        self._session.execute(stmt)
        self._session.flush()

    def latest(self) -> list[HeartbeatRow]:
        """Every worker's last heartbeat, newest first."""
        return latest_heartbeats(sql_connection(self._session))
