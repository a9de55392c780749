"""``dantaro healthcheck worker``: is a worker on this host alive? (the worker container's HEALTHCHECK).

Invariants: healthy (exit 0, one ``ok`` line on stdout) when a heartbeat row whose ``worker_id`` starts with
``socket.gethostname() + ":"`` is younger than ``3 × heartbeat_interval_s``; otherwise exit 1 with one line on
stderr saying why (also when the database is unreachable). Reads only.
"""

from __future__ import annotations

import argparse
import socket
import sys
from datetime import datetime

from app.config import Settings

MISSED_BEATS = 3


def worker_health(settings: Settings, *, hostname: str, now: datetime) -> tuple[bool, str]:
    """(healthy, one-line reason) for the workers of ``hostname`` as of ``now`` (aware UTC)."""
    from app.storage.db import make_engine, make_session_factory
    from app.storage.repositories import HeartbeatRepository

    engine = make_engine(settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            beats = [row for row in HeartbeatRepository(session).latest() if row.worker_id.startswith(hostname + ":")]
    finally:
        engine.dispose()
    limit_s = MISSED_BEATS * settings.heartbeat_interval_s
    if not beats:
        return False, f"no worker heartbeat from host {hostname}"
    newest = beats[0]  # latest() is newest first
    age_s = (now - newest.last_beat_at).total_seconds()
    if age_s >= limit_s:
        return False, f"worker {newest.worker_id} last beat {age_s:.0f} s ago (limit {limit_s:.0f} s)"
    return True, f"ok: worker {newest.worker_id} beat {age_s:.1f} s ago ({newest.state})"


def _cmd_healthcheck(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.domain import utc_now

    try:
        healthy, reason = worker_health(settings, hostname=socket.gethostname(), now=utc_now())
    except SQLAlchemyError as exc:  # unreachable or unmigrated database: unhealthy, in one line
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        healthy, reason = False, f"database unavailable: {type(exc).__name__}: {detail}"
    print(reason, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dantaro healthcheck worker`` to the ``dantaro`` command."""
    parser = subparsers.add_parser("healthcheck", help="exit 0 when a process of this host is healthy, else 1")
    parser.add_argument("target", choices=["worker"], help="worker: a heartbeat from this host within 3 intervals")
    parser.set_defaults(handler=_cmd_healthcheck)
