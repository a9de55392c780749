"""API keys: a public ``key_id`` and the sha256 of the secret; the secret is shown once, at creation.

Invariants:
- A secret reads ``dk_<key_id>_<token>``; ``key_id`` is lowercase hex (no ``_``), the token is
  ``secrets.token_urlsafe(32)``. Only ``sha256(secret)`` (hex) is stored; hashes are compared in constant time.
- Revoked keys never verify. ``last_used_at`` only moves forward (batched updates from a periodic flush).
- Rows are returned as plain values usable after the session closes. The repository flushes, never commits.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from app.domain import utc_now
from app.storage.models import ApiKeyModel

SECRET_PREFIX = "dk_"
KEY_ID_BYTES = 6


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


class ApiKeyRepository:
    """Creates, verifies and revokes API keys within the caller's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def create(self, *, name: str, rate_limit_per_min: int, created_at: datetime | None = None) -> tuple[str, str]:
        """A new key: returns ``(key_id, secret)``; the secret cannot be recovered later."""
        if rate_limit_per_min <= 0:
            raise ValueError("rate_limit_per_min must be positive")
        key_id = secrets.token_hex(KEY_ID_BYTES)
        secret = f"{SECRET_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        self._session.add(
            ApiKeyModel(
                key_id=key_id,
                name=name,
                key_hash=hash_secret(secret),
                rate_limit_per_min=rate_limit_per_min,
                created_at=created_at or utc_now(),
            )
        )
        self._session.flush()
        return key_id, secret

    def verify(self, secret: str) -> ApiKeyRow | None:
        """The active key this secret belongs to, or None (unknown, wrong secret or revoked)."""
        key_id = parse_key_id(secret)
        if key_id is None:
            return None
        row = self._session.get(ApiKeyModel, key_id)
        if row is None or not hmac.compare_digest(row.key_hash, hash_secret(secret)):
            return None
        if row.revoked_at is not None:
            return None
        return _to_row(row)

    def revoke(self, key_id: str, *, revoked_at: datetime | None = None) -> bool:
        """Revoke an active key; False if it does not exist or was already revoked."""
        row = self._session.get(ApiKeyModel, key_id)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = revoked_at or utc_now()
        self._session.flush()
        return True

    def touch_last_used(self, *, used_at: Mapping[str, datetime]) -> None:
        """Move ``last_used_at`` forward for many keys in one batched statement."""
        if not used_at:
            return
        stmt = (
            update(ApiKeyModel)
            .where(ApiKeyModel.key_id == bindparam("b_key_id"))
            .where(or_(ApiKeyModel.last_used_at.is_(None), ApiKeyModel.last_used_at < bindparam("b_used_at")))
            .values(last_used_at=bindparam("b_used_at"))
        )
        params = [{"b_key_id": key_id, "b_used_at": when} for key_id, when in used_at.items()]
        self._session.flush()
        self._session.connection().execute(stmt, params)
        self._session.expire_all()

    def list(self) -> builtins.list[ApiKeyRow]:
        """Every key, revoked ones included, oldest first."""
        rows = self._session.execute(select(ApiKeyModel).order_by(ApiKeyModel.created_at, ApiKeyModel.key_id)).scalars()
        return [_to_row(row) for row in rows]


def _to_row(row: ApiKeyModel) -> ApiKeyRow:
    return ApiKeyRow(
        key_id=row.key_id,
        name=row.name,
        rate_limit_per_min=row.rate_limit_per_min,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )
