"""Is a worker on this host alive? (``dantaro healthcheck worker``, the worker container's HEALTHCHECK).

Invariants: healthy when a heartbeat row whose ``worker_id`` starts with ``hostname + ":"`` is younger than
``3 × heartbeat_interval_s``; the reason is one line either way. Reads only; database errors propagate
(``SQLAlchemyError``) for the caller to report.
"""

from __future__ import annotations

from datetime import datetime

from app.config import Settings

MISSED_BEATS = 3


def worker_health(settings: Settings, *, hostname: str, now: datetime) -> tuple[bool, str]:
    """(healthy, one-line reason) for the workers of ``hostname`` as of ``now`` (aware UTC)."""
    from app.storage.db import unit_of_work
    from app.storage.repositories import HeartbeatRepository

    with unit_of_work(settings.resolved_database_url) as session:
        beats = [row for row in HeartbeatRepository(session).latest() if row.worker_id.startswith(hostname + ":")]
    limit_s = MISSED_BEATS * settings.heartbeat_interval_s
    if not beats:
        return False, f"no worker heartbeat from host {hostname}"
    newest = beats[0]  # latest() is newest first
    age_s = (now - newest.last_beat_at).total_seconds()
    if age_s >= limit_s:
        return False, f"worker {newest.worker_id} last beat {age_s:.0f} s ago (limit {limit_s:.0f} s)"
    return True, f"ok: worker {newest.worker_id} beat {age_s:.1f} s ago ({newest.state})"
