"""``dantaro keys``: create, list and revoke API keys in the configured database.

Invariants: a key's secret is printed once, by ``create``, and never stored (only its hash); ``--rate-limit``
reads ``N``, ``N/min``, ``N/s`` or ``N/h`` and is stored as whole requests per minute; bad input or an unknown
key id prints one line on stderr and exits 2. Each command is one unit of work (one commit).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import NoReturn

from sqlalchemy.orm import Session

from app.config import Settings
from app.storage.api_keys import ApiKeyRepository, ApiKeyRow
from app.storage.db import make_engine, make_session_factory

DEFAULT_RATE_LIMIT = "600/min"
USAGE_ERROR = 2
_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*$", re.IGNORECASE)
_PER_MINUTE = {"s": 60.0, "m": 1.0, "h": 1 / 60}

Handler = Callable[[argparse.Namespace, Settings], int]


class KeysUsageError(ValueError):
    """Input the user can fix; reported as one line, exit 2."""


def parse_rate_limit(text: str) -> int:
    """Requests per minute from ``N``, ``N/min``, ``N/s`` or ``N/h``; KeysUsageError when unreadable or < 1/min."""
    match = _RATE.match(text)
    if match is None:
        raise KeysUsageError(f"--rate-limit {text!r} is not a rate; write e.g. 600/min, 10/s or 3600/h")
    count, unit = int(match.group(1)), (match.group(2) or "m")[0].lower()
    per_min = count * _PER_MINUTE[unit]
    if per_min < 1 or per_min != int(per_min):
        raise KeysUsageError(f"--rate-limit {text!r} must come to a whole number of at least 1 request per minute")
    return int(per_min)


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


def _cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    name = args.name.strip()
    if not name or len(name) > 128:
        raise KeysUsageError("--name must be 1 to 128 characters")
    rate_limit_per_min = parse_rate_limit(args.rate_limit)
    with _session(settings) as session:
        key_id, secret = ApiKeyRepository(session).create(name=name, rate_limit_per_min=rate_limit_per_min)
    print(f"created key {key_id} ({name}, {rate_limit_per_min}/min)")
    print("secret (shown only now; send it as 'Authorization: Bearer <secret>'):")
    print(secret)
    return 0


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_rows(rows: list[ApiKeyRow]) -> list[str]:
    """One aligned line per key (header first): id, status, rate limit, created, last used, name."""
    table = [("ID", "STATUS", "LIMIT/MIN", "CREATED", "LAST_USED", "NAME")]
    for row in rows:
        status = "active" if row.revoked_at is None else f"revoked {_when(row.revoked_at)}"
        table.append(
            (row.key_id, status, str(row.rate_limit_per_min), _when(row.created_at), _when(row.last_used_at), row.name)
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[-1]]) for line in table]


def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    with _session(settings) as session:
        rows = ApiKeyRepository(session).list()
    if not rows:
        print("no API keys; create one with: dantaro keys create --name NAME")
        return 0
    print("\n".join(format_rows(rows)))
    return 0


def _cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    key_id = args.key_id.strip()
    with _session(settings) as session:
        repository = ApiKeyRepository(session)
        known = {row.key_id: row for row in repository.list()}
        if key_id not in known:
            raise KeysUsageError(f"no API key with id {key_id!r}; see `dantaro keys list`")
        if not repository.revoke(key_id):
            raise KeysUsageError(f"API key {key_id} was already revoked at {_when(known[key_id].revoked_at)}")
    print(f"revoked key {key_id}; every API process refuses it within a second")
    return 0


def _reporting_usage_errors(handler: Handler) -> Handler:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return handler(args, settings)
        except KeysUsageError as exc:
            print(f"dantaro keys {args.keys_command}: {exc}", file=sys.stderr)
            return USAGE_ERROR

    return run


class _UsageParser(argparse.ArgumentParser):
    """Reports argument errors as one line on stderr with exit status 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` on one line and exit 2."""
        self.exit(USAGE_ERROR, f"{self.prog}: {message}\n")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``keys`` command (create, list, revoke) to the ``dantaro`` parser."""
    keys = subparsers.add_parser("keys", help="create, list and revoke API keys")
    commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION", parser_class=_UsageParser)
    create = commands.add_parser("create", help="create a key and print its secret (once)")
    create.add_argument("--name", required=True, help="who the key is for, e.g. the user server's name")
    create.add_argument(
        "--rate-limit", default=DEFAULT_RATE_LIMIT, help="requests per minute: N, N/min, N/s or N/h (default 600/min)"
    )
    create.set_defaults(handler=_reporting_usage_errors(_cmd_create))
    listing = commands.add_parser("list", help="list every key (secrets are never shown)")
    listing.set_defaults(handler=_reporting_usage_errors(_cmd_list))
    revoke = commands.add_parser("revoke", help="revoke a key by id; API processes refuse it within a second")
    revoke.add_argument("key_id", metavar="ID", help="the key's id (see `dantaro keys list`)")
    revoke.set_defaults(handler=_reporting_usage_errors(_cmd_revoke))
