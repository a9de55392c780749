"""``dantaro healthcheck worker``: exit 0 when a worker of this host beat recently, else 1 with the reason.

The check itself is ``app.worker.healthcheck.worker_health``; an unreachable or unmigrated database is unhealthy
(exit 1, one line), not a crash.
"""

from __future__ import annotations

import argparse
import socket
import sys

from app.cli.command import Command
from app.config import Settings


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.domain import utc_now
    from app.worker.healthcheck import worker_health

    try:
        healthy, reason = worker_health(settings, hostname=socket.gethostname(), now=utc_now())
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        healthy, reason = False, f"database unavailable: {type(exc).__name__}: {detail}"
    print(reason, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


COMMAND = Command(
    name="healthcheck",
    summary="exit 0 when a process of this host is healthy, else 1 (container HEALTHCHECK)",
    actions=(Command(name="worker", summary="a heartbeat from this host's worker within 3 intervals", run=_worker),),
)
