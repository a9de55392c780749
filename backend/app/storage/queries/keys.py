"""API keys as the API reads them: secrets verified against their stored sha256, last use moved forward.

Invariants:
- A secret reads ``dk_<key_id>_<token>``; only ``sha256(secret)`` (hex) is stored, compared in constant time.
- Revoked keys never verify. ``touch_last_used`` only moves ``last_used_at`` forward.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.storage.sql import TABLES, SqlConnection

SECRET_PREFIX = "dk_"
_TABLE = TABLES["api_keys"]
_COLUMNS = "key_id, name, key_hash, rate_limit_per_min, created_at, revoked_at, last_used_at"


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """One API key as stored (without its secret)."""

    key_id: str
    name: str
    rate_limit_per_min: int
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def hash_secret(secret: str) -> str:
    """The stored form of a secret: sha256 hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_key_id(secret: str) -> str | None:
    """The ``key_id`` inside a well-formed secret, or None."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    key_id, separator, token = secret[len(SECRET_PREFIX) :].partition("_")
    if not separator or not token or not key_id or len(key_id) > 32:
        return None
    return key_id


def verify_key(conn: SqlConnection, secret: str) -> ApiKeyRow | None:
    """The active key this secret belongs to, or None (unknown, wrong secret or revoked)."""
    key_id = parse_key_id(secret)
    if key_id is None:
        return None
    rows = conn.rows(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = :key_id", table=_TABLE, key_id=key_id)
    if not rows or not hmac.compare_digest(rows[0]["key_hash"], hash_secret(secret)):
        return None
    row = rows[0]
    return None if row["revoked_at"] is not None else key_row(row)


def list_keys(conn: SqlConnection) -> list[ApiKeyRow]:
    """Every key, revoked ones included, oldest first."""
    rows = conn.rows(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, key_id", table=_TABLE)
    return [key_row(row) for row in rows]


def touch_last_used(conn: SqlConnection, *, used_at: Mapping[str, datetime]) -> None:
    """Move ``last_used_at`` forward for many keys in one batched statement."""
    conn.execute_many(
        "UPDATE api_keys SET last_used_at = :used_at"
        " WHERE key_id = :key_id AND (last_used_at IS NULL OR last_used_at < :used_at)",
        [{"key_id": key_id, "used_at": when} for key_id, when in used_at.items()],
    )


def key_row(row: Mapping[str, Any]) -> ApiKeyRow:
    """A decoded ``api_keys`` row without its hash."""
    return ApiKeyRow(
        key_id=row["key_id"],
        name=row["name"],
        rate_limit_per_min=row["rate_limit_per_min"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )
