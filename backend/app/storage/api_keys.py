"""API keys: a public ``key_id`` and the sha256 of the secret; the secret is shown once, at creation.

Invariants:
- A secret reads ``dk_<key_id>_<token>``; ``key_id`` is lowercase hex (no ``_``), the token is
  ``secrets.token_urlsafe(32)``. Only ``sha256(secret)`` (hex) is stored; hashes are compared in constant time.
- Revoked keys never verify. ``last_used_at`` only moves forward (batched updates from a periodic flush).
- Rows are returned as plain values usable after the session closes. The repository flushes, never commits.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from app.domain import utc_now
from app.storage.db import sql_connection
from app.storage.models import ApiKeyModel
from app.storage.queries import keys
from app.storage.queries.keys import SECRET_PREFIX, ApiKeyRow, hash_secret, parse_key_id

__all__ = ["SECRET_PREFIX", "ApiKeyRepository", "ApiKeyRow", "hash_secret", "parse_key_id"]
KEY_ID_BYTES = 6


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
        return keys.verify_key(sql_connection(self._session), secret)

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
        keys.touch_last_used(sql_connection(self._session), used_at=used_at)
        self._session.expire_all()

    def list(self) -> builtins.list[ApiKeyRow]:
        """Every key, revoked ones included, oldest first."""
        return keys.list_keys(sql_connection(self._session))
