#!/usr/bin/env python
"""Migrate the configured database: ``python migrate.py upgrade|current|check|downgrade [REVISION]``.

The URL is ``app.config.get_settings().resolved_database_url`` (``DANTARO_DATABASE_URL`` or the embedded SQLite
file). Errors print one readable line on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "backend"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="migrate.py", description="Apply or inspect database migrations.")
    parser.add_argument("command", choices=["upgrade", "current", "check", "downgrade"])
    parser.add_argument("revision", nargs="?", help="target revision (upgrade: default head; downgrade: required)")
    return parser


def _run(command: str, revision: str | None) -> str:
    from app.config import get_settings
    from app.storage import migrate

    url = get_settings().resolved_database_url
    if command == "upgrade":
        migrate.upgrade(url, revision or "head")
        return f"upgraded to {migrate.current(url)}"
    if command == "downgrade":
        if not revision:
            raise ValueError("downgrade needs a REVISION (e.g. base, or -1)")
        migrate.downgrade(url, revision)
        return f"downgraded to {migrate.current(url) or 'base'}"
    if command == "check":
        migrate.check(url)
        return "schema is at head and matches the models"
    return migrate.current(url) or "none (not migrated)"


def main(argv: list[str] | None = None) -> int:
    """Run one migration command; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        print(_run(args.command, args.revision))
    except Exception as exc:  # one readable line for any failure, not a traceback
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"migrate {args.command} failed: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
