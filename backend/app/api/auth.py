"""Bearer-key authentication.

A key is valid when it equals the development key (only while ``Settings.dev_key_active()``; compared in constant
time) or when the api-keys table verifies it. Positive verifications are cached in-process for ``ttl_s``
(default 0.5 s), keyed by the SHA-256 of the secret, so the database is asked at most once per key per TTL and a
revoked key stops working within that TTL plus one re-check (when a verification has just expired, ``serve_stale``
serves it for one more TTL while one background refresh asks the database, ``app.single_flight``, so no request
waits and a burst of requests cannot stampede the database). Failures are never cached. The plaintext secret is
never stored. Concurrent checks of one secret share one lookup (``check``: a burst of first requests with a new
key asks the database once). When the database cannot be asked (an outage), a key verified within the last
``grace_s`` (default 300 s) keeps working, so cached data stays served; any other key gets
``KeyStoreUnavailableError`` (the API answers 503).
``last_used_at`` is never written per request: ``UsageRecorder`` remembers each key's latest use in memory and
``flush()`` (run periodically and at shutdown by the app) writes them all in one batched statement.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import structlog
from fastapi.concurrency import run_in_threadpool

from app.config import DEVELOPMENT_KEY
from app.single_flight import Joined, SingleFlight, Spawn, in_background
from app.storage.queries.keys import touch_last_used, verify_key
from app.storage.sql import Database, DatabaseError

MAX_SECRET_CHARS = 256
log = structlog.get_logger(__name__)


class KeyStoreUnavailableError(Exception):
    """The api-keys table cannot be read and the key was not verified recently."""


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


def database_key_lookup(database: Database) -> KeyLookup:
    """A lookup that verifies secrets against the api-keys table, one short read per call."""

    def lookup(secret: str) -> ApiPrincipal | None:
        row = database.read(lambda conn: verify_key(conn, secret))
        if row is None:
            return None
        return ApiPrincipal(key_id=row.key_id, name=row.name, rate_limit_per_min=row.rate_limit_per_min)

    return lookup


class UsageRecorder:
    """Remembers when each key was last used and writes the batch to the api-keys table on ``flush()``."""

    def __init__(self, database: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._database = database
        self._clock = clock
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()

    def record(self, key_id: str) -> None:
        """Note one use of ``key_id`` now (memory only)."""
        self._pending[key_id] = self._clock()  # a single dict store: atomic, no lock on the hot path

    def flush(self) -> int:
        """Write every pending use in one statement and commit; returns how many keys were written."""
        with self._lock:
            taken, self._pending = self._pending, {}
            pending = dict(taken)  # a C-level copy: a record() racing the swap cannot resize it under us
        if not pending:
            return 0
        used_at = {key_id: datetime.fromtimestamp(at_s, UTC) for key_id, at_s in pending.items()}
        try:
            self._database.write(lambda conn: touch_last_used(conn, used_at=used_at))
        except Exception:
            with self._lock:  # keep the uses for the next flush (a newer use of the same key wins)
                self._pending = {**pending, **self._pending}
            raise
        return len(used_at)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class KeyVerifier:
    """Verifies bearer secrets, caching positive answers for ``ttl_s`` seconds."""

    def __init__(
        self,
        *,
        lookup: KeyLookup,
        dev_key_active: bool,
        ttl_s: float = 0.5,
        grace_s: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        spawn: Spawn = in_background,
    ) -> None:
        self._lookup = lookup
        self._dev_key_active = dev_key_active
        self._ttl_s = ttl_s
        self._grace_s = grace_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[bytes, tuple[float, ApiPrincipal]] = {}
        self._refreshes: SingleFlight[bytes] = SingleFlight(failure_event="key_refresh_failed", spawn=spawn)
        self._checks: Joined[bytes, ApiPrincipal | None] = Joined()
        self._lock = threading.Lock()

    async def check(self, secret: str) -> ApiPrincipal | None:
        """``verify`` on a worker thread; concurrent checks of one secret share one lookup."""
        return await self._checks.run(_digest(secret), partial(run_in_threadpool, self.verify, secret))

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

    def known(self, secret: str) -> bool:
        """Whether ``secret`` is the active development key or a key this process verified and has not seen
        refused since (however long ago); no I/O. Says nothing about revocation: the key still has to be checked."""
        if self.cached(secret) is not None:
            return True
        return bool(secret) and len(secret) <= MAX_SECRET_CHARS and _digest(secret) in self._cache

    def serve_stale(self, secret: str) -> ApiPrincipal | None:
        """A verification expired less than one more TTL ago, served while one background refresh re-checks it.

        The refresh (single flight per key) drops a revoked key; a failing key store is logged, and the grace
        rule of ``verify`` applies on the next miss. No I/O on the caller's thread.
        """
        if not secret or len(secret) > MAX_SECRET_CHARS:
            return None
        digest = _digest(secret)
        entry = self._cache.get(digest)
        if entry is None or entry[0] + self._ttl_s <= self._clock():
            return None
        self._refreshes.start(digest, partial(self.verify, secret))
        return entry[1]

    def verify(self, secret: str) -> ApiPrincipal | None:
        """The principal for ``secret``, or None when it is not a valid key (may ask the database)."""
        principal = self.cached(secret)
        if principal is not None or not secret or len(secret) > MAX_SECRET_CHARS:
            return principal
        now_s = self._clock()
        digest = _digest(secret)
        try:
            principal = self._lookup(secret)
        except DatabaseError as exc:
            return self._during_outage(digest, now_s=now_s, error=exc)
        with self._lock:
            if principal is None:
                self._cache.pop(digest, None)
            else:
                self._remember(digest, principal, now_s=now_s)
        return principal

    def _during_outage(self, digest: bytes, *, now_s: float, error: Exception) -> ApiPrincipal:
        """A key verified within ``grace_s`` while the database is down; else ``KeyStoreUnavailableError``."""
        entry = self._cache.get(digest)
        if entry is not None and now_s - (entry[0] - self._ttl_s) <= self._grace_s:
            log.warning("key_store_unavailable_grace", key_id=entry[1].key_id, error_type=type(error).__name__)
            return entry[1]
        log.warning("key_store_unavailable", error_type=type(error).__name__)
        raise KeyStoreUnavailableError("the key store cannot be read right now") from error

    def _remember(self, digest: bytes, principal: ApiPrincipal, *, now_s: float) -> None:
        if len(self._cache) >= self._max_entries:
            expired = [key for key, (until_s, _) in self._cache.items() if until_s <= now_s]
            for key in expired:
                del self._cache[key]
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
        self._cache[digest] = (now_s + self._ttl_s, principal)
