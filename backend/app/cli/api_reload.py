"""``dantaro api-reload``: gracefully reload the API processes of ``dantaro api --workers N`` (new code, no request
lost): exit 0 when every slot serves a new process, 1 when the reload stopped (the old processes still serve), 3
when no supervisor runs with this data directory (nothing to reload: ``deploy.sh`` then restarts the API)."""

from __future__ import annotations

import argparse
import sys

from app.cli.command import Command
from app.config import Settings

NOT_SUPERVISED_EXIT = 3


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pid", type=int, help="reload only if the supervisor is this process (systemd's $MAINPID)")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="give up waiting after this long (default 300)")


def _reload(args: argparse.Namespace, settings: Settings) -> int:
    from app.supervisor.state import NotSupervisedError, request_reload

    try:
        outcome = request_reload(settings.data_dir, pid=args.pid, timeout_s=args.timeout_s)
    except NotSupervisedError as exc:
        print(f"dantaro api-reload: {exc}", file=sys.stderr)
        return NOT_SUPERVISED_EXIT
    if outcome.ok:
        print(f"dantaro api-reload: reloaded in {outcome.duration_s:g} s ({outcome.detail})")
        return 0
    print(
        f"dantaro api-reload: the reload failed: {outcome.detail}; the previous processes still serve", file=sys.stderr
    )
    return 1


COMMAND = Command(
    name="api-reload",
    summary="start new API processes, then stop the old ones once the new serve (dantaro api --workers N)",
    run=_reload,
    arguments=_arguments,
)
