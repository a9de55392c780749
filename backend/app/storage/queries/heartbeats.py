"""Worker heartbeats as readers see them: every worker's last beat, newest first (aware UTC datetimes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.storage.sql import TABLES, SqlConnection


@dataclass(frozen=True, slots=True)
class HeartbeatRow:
    """The last heartbeat of one worker."""

    worker_id: str
    hostname: str
    pid: int
    started_at: datetime
    last_beat_at: datetime
    state: str
    current_run_id: str | None


def latest_heartbeats(conn: SqlConnection) -> list[HeartbeatRow]:
    """Every worker's last heartbeat, newest first."""
    rows = conn.rows(
        "SELECT worker_id, hostname, pid, started_at, last_beat_at, state, current_run_id"
        " FROM worker_heartbeats ORDER BY last_beat_at DESC, worker_id",
        table=TABLES["worker_heartbeats"],
    )
    return [HeartbeatRow(**row) for row in rows]
