"""``dantaro migrate [upgrade|downgrade|current|check] [REVISION]`` (``python migrate.py`` is the same command).

``upgrade`` is the default action and goes to ``head``; ``downgrade`` needs an explicit REVISION (``-1``, ``base`` or
an id) because it drops data. A failing migration exits 1 with one line.
"""

from __future__ import annotations

import argparse

from app.cli.command import Command
from app.config import Settings
from app.errors import UsageError

ACTIONS = ("upgrade", "downgrade", "current", "check")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="upgrade", choices=ACTIONS, help="what to do (default upgrade)")
    parser.add_argument("revision", nargs="?", help="target revision (upgrade: default head; downgrade: required)")


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from app.storage import migrate

    url = settings.resolved_database_url
    if args.action == "upgrade":
        migrate.upgrade(url, args.revision or "head")
        print(f"database at revision {migrate.current(url)}")
    elif args.action == "downgrade":
        if not args.revision:
            raise UsageError("downgrade needs a REVISION: -1 (one step), base (everything) or a revision id")
        migrate.downgrade(url, args.revision)
        print(f"database at revision {migrate.current(url) or 'none'}")
    elif args.action == "current":
        print(migrate.current(url) or "none")
    else:
        migrate.check(url)
        print("database is at head and matches the models")
    return 0


COMMAND = Command(
    name="migrate", summary="apply or inspect database migrations (Alembic)", run=_migrate, arguments=_arguments
)
