"""Bearer-key authentication.

A key is valid when it equals the development key (only while ``Settings.dev_key_active()``; compared in constant
time) or when the api-keys table verifies it. Positive verifications are cached in-process for ``ttl_s``
(default 1 s), keyed by the SHA-256 of the secret, so the database is asked at most once per key per TTL and a
revoked key stops working within that TTL. Failures are never cached. The plaintext secret is never stored.
``last_used_at`` is written at most once per ``LAST_USED_RESOLUTION`` per key, on a database verification.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.config import DEVELOPMENT_KEY
from app.domain import utc_now
from app.storage.api_keys import ApiKeyRepository

MAX_SECRET_CHARS = 256
LAST_USED_RESOLUTION = timedelta(minutes=1)  # ``last_used_at`` is written at most this often per key


@dataclass(frozen=True, slots=True)
class ApiPrincipal:
    """Who is calling: the key's id and name and its per-minute request budget (None = unlimited)."""

    key_id: str
    name: str
    rate_limit_per_min: int | None
    development: bool = False


DEVELOPMENT_PRINCIPAL = ApiPrincipal(
    key_id="development", name="development key", rate_limit_per_min=None, development=True
)

KeyLookup = Callable[[str], ApiPrincipal | None]


def database_key_lookup(session_factory: sessionmaker[Session]) -> KeyLookup:
    """A lookup that verifies secrets against the api-keys table, one short session per call."""

    def lookup(secret: str) -> ApiPrincipal | None:
        with session_factory() as session:
            repository = ApiKeyRepository(session)
            row = repository.verify(secret)
            if row is None:
                return None
            now = utc_now()
            if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
                repository.touch_last_used(used_at={row.key_id: now})
                session.commit()  # this lookup owns its unit of work
            return ApiPrincipal(key_id=row.key_id, name=row.name, rate_limit_per_min=row.rate_limit_per_min)

    return lookup


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class KeyVerifier:
    """Verifies bearer secrets, caching positive answers for ``ttl_s`` seconds."""

    def __init__(
        self,
        *,
        lookup: KeyLookup,
        dev_key_active: bool,
        ttl_s: float = 1.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._dev_key_active = dev_key_active
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[bytes, tuple[float, ApiPrincipal]] = {}
        self._lock = threading.Lock()

    def cached(self, secret: str) -> ApiPrincipal | None:
        """The principal when ``secret`` is the active development key or a recently verified key; no I/O."""
        if not secret or len(secret) > MAX_SECRET_CHARS:
            return None
        if self._dev_key_active and hmac.compare_digest(secret.encode(), DEVELOPMENT_KEY.encode()):
            return DEVELOPMENT_PRINCIPAL
        entry = self._cache.get(_digest(secret))
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        return None

    def verify(self, secret: str) -> ApiPrincipal | None:
        """The principal for ``secret``, or None when it is not a valid key (may ask the database)."""
        principal = self.cached(secret)
        if principal is not None or not secret or len(secret) > MAX_SECRET_CHARS:
            return principal
        now_s = self._clock()
        principal = self._lookup(secret)
        digest = _digest(secret)
        with self._lock:
            if principal is None:
                self._cache.pop(digest, None)
            else:
                self._remember(digest, principal, now_s=now_s)
        return principal

    def _remember(self, digest: bytes, principal: ApiPrincipal, *, now_s: float) -> None:
        if len(self._cache) >= self._max_entries:
            expired = [key for key, (until_s, _) in self._cache.items() if until_s <= now_s]
            for key in expired:
                del self._cache[key]
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
        self._cache[digest] = (now_s + self._ttl_s, principal)
