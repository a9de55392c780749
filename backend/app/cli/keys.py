"""``dantaro keys create|list|revoke``: API keys in the configured database.

Invariants: a key's secret is printed once, by ``create``, and never stored (only its hash); ``--rate-limit``
reads ``N``, ``N/min``, ``N/s`` or ``N/h`` and is stored as whole requests per minute; bad input or an unknown key
id is a ``UsageError`` (one line, exit 2). Each action is one unit of work (one commit).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from app.cli.command import Command
from app.cli.table import aligned
from app.cli.table import when as _when
from app.config import Settings
from app.errors import UsageError
from app.storage.queries.keys import ApiKeyRow

if TYPE_CHECKING:
    from app.storage.api_keys import ApiKeyRepository

DEFAULT_RATE_LIMIT = "600/min"
_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*$", re.IGNORECASE)
_PER_MINUTE = {"s": 60.0, "m": 1.0, "h": 1 / 60}


def parse_rate_limit(text: str) -> int:
    """Requests per minute from ``N``, ``N/min``, ``N/s`` or ``N/h``; ``UsageError`` when unreadable or < 1/min."""
    match = _RATE.match(text)
    if match is None:
        raise UsageError(f"--rate-limit {text!r} is not a rate; write e.g. 600/min, 10/s or 3600/h")
    count, unit = int(match.group(1)), (match.group(2) or "m")[0].lower()
    per_min = count * _PER_MINUTE[unit]
    if per_min < 1 or per_min != int(per_min):
        raise UsageError(f"--rate-limit {text!r} must come to a whole number of at least 1 request per minute")
    return int(per_min)


@contextmanager
def _repository(settings: Settings) -> Iterator[ApiKeyRepository]:
    """The keys of the configured database in one unit of work (SQLAlchemy loads here, not with the CLI)."""
    from app.storage.api_keys import ApiKeyRepository
    from app.storage.db import unit_of_work

    with unit_of_work(settings.resolved_database_url) as session:
        yield ApiKeyRepository(session)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    name = args.name.strip()
    if not name or len(name) > 128:
        raise UsageError("--name must be 1 to 128 characters")
    rate_limit_per_min = parse_rate_limit(args.rate_limit)
    with _repository(settings) as repository:
        key_id, secret = repository.create(name=name, rate_limit_per_min=rate_limit_per_min)
    print(f"created key {key_id} ({name}, {rate_limit_per_min}/min)")
    print("secret (shown only now; send it as 'Authorization: Bearer <secret>'):")
    print(secret)
    return 0


def format_rows(rows: list[ApiKeyRow]) -> list[str]:
    """One aligned line per key (header first): id, status, rate limit, created, last used, name."""
    table = [("ID", "STATUS", "LIMIT/MIN", "CREATED", "LAST_USED", "NAME")]
    for row in rows:
        status = "active" if row.revoked_at is None else f"revoked {_when(row.revoked_at)}"
        table.append(
            (row.key_id, status, str(row.rate_limit_per_min), _when(row.created_at), _when(row.last_used_at), row.name)
        )
    return aligned(table)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    with _repository(settings) as repository:
        rows = repository.list()
    if not rows:
        print("no API keys; create one with: dantaro keys create --name NAME")
        return 0
    print("\n".join(format_rows(rows)))
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    key_id = args.key_id.strip()
    with _repository(settings) as repository:
        known = {row.key_id: row for row in repository.list()}
        if key_id not in known:
            raise UsageError(f"no API key with id {key_id!r}; see `dantaro keys list`")
        if not repository.revoke(key_id):
            raise UsageError(f"API key {key_id} was already revoked at {_when(known[key_id].revoked_at)}")
    print(f"revoked key {key_id}; every API process refuses it within a second")
    return 0


def _create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="who the key is for, e.g. the user server's name")
    parser.add_argument(
        "--rate-limit", default=DEFAULT_RATE_LIMIT, help="requests per minute: N, N/min, N/s or N/h (default 600/min)"
    )


def _revoke_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key_id", metavar="ID", help="the key's id (see `dantaro keys list`)")


COMMAND = Command(
    name="keys",
    summary="create, list and revoke API keys",
    actions=(
        Command(
            name="create", summary="create a key and print its secret (once)", run=_create, arguments=_create_arguments
        ),
        Command(name="list", summary="list every key (secrets are never shown)", run=_list),
        Command(
            name="revoke",
            summary="revoke a key by id; API processes refuse it within a second",
            run=_revoke,
            arguments=_revoke_arguments,
        ),
    ),
)
