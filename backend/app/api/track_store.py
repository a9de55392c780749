"""The track record's read tiers: per-process copy -> Redis (shared by the API processes) -> database.

Invariants:
- A body is keyed by everything it depends on: the exchange's track-record version
  (``TrackRecordReads.latest_scored_at``, which moves whenever the scorer saves scores), the request's
  normalised parameters and, for windowed views, the window's end. A body is never served for a version other than
  its own; new scores reach this process at most ``version_check_interval_s`` (1 s) after their commit.
- The version is re-read from the database at most once per ``version_check_interval_s`` per exchange (a cheap
  indexed ``max``); bodies are read (and aggregated) only when the version or the parameters are new. Past the
  interval, ``known_version`` serves the last version read while one background re-read runs (``app.single_flight``),
  so no request waits for it.
- Redis holds each body as orjson (never pickle) under ``<prefix>:track-record:<exchange>:<key>`` for ``ttl_s``;
  a Redis failure trips the breaker shared with the snapshot reader (Redis is then skipped for a while) and the
  database answers. Scoring never writes Redis: a body enters it on the first API read of its version.
- Retention deleting old runs does not move the version: a cached body may list a deleted run until the next
  scores are saved (the worker saves some every cycle while it runs).
- The per-process copy holds at most ``max_entries`` bodies (the oldest is dropped). Thread-safe: two small dicts
  guarded by a lock that is never held during I/O.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

import orjson
import structlog

from app.api.responses import dump_json
from app.single_flight import SingleFlight, Spawn, in_background
from app.storage.queries.track_record import TrackRecordReads
from app.storage.redis_client import RedisClient
from app.storage.resp import RedisError, describe
from app.storage.sql import Database

log = structlog.get_logger(__name__)

View = dict[str, Any]
Load = Callable[[TrackRecordReads], View]
MEMORY = "memory"
REDIS = "redis"
DATABASE = "database"
NOTHING_SCORED = "none"  # the version of an exchange without scores
T = TypeVar("T")
WHAT = "track record"  # how a Redis failure of this store is named in the breaker's reason


class Breaker(Protocol):
    """The circuit breaker around the shared Redis (the snapshot reader's)."""

    def cache_usable(self) -> bool:
        """False while Redis is being skipped."""
        ...

    def trip_cache(self, reason: str) -> None:
        """Record a failure: skip Redis for a while."""
        ...


@dataclass(frozen=True, slots=True)
class SharedTier:
    """Where bodies are shared between API processes (also the candle bodies of ``app.api.candle_store``)."""

    client: RedisClient
    prefix: str
    ttl_s: int
    breaker: Breaker

    def read(self, name: str, *, what: str) -> bytes | None:
        """The payload under ``<prefix>:<name>``; None when absent, or when Redis is skipped or fails (the breaker
        is then tripped with ``what`` in its reason)."""
        if not self.breaker.cache_usable():
            return None
        try:
            payload = self.client.execute("GET", f"{self.prefix}:{name}")
        except RedisError as exc:
            self.breaker.trip_cache(f"{what}: {describe(exc)}")
            return None
        return payload if isinstance(payload, bytes) else None

    def write(self, name: str, payload: bytes, *, what: str) -> None:
        """Store ``payload`` under ``<prefix>:<name>`` for ``ttl_s``; a failure trips the breaker, never raises."""
        if not self.breaker.cache_usable():
            return
        try:
            self.client.execute("SET", f"{self.prefix}:{name}", payload, "EX", self.ttl_s)
        except RedisError as exc:
            self.breaker.trip_cache(f"{what}: {describe(exc)}")


class BoundedMemo(Generic[T]):
    """A per-process copy of at most ``max_entries`` values by key (the least recently stored is dropped);
    thread-safe, never does I/O."""

    def __init__(self, *, max_entries: int) -> None:
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._values: OrderedDict[str, T] = OrderedDict()

    def get(self, key: str) -> T | None:
        """The value of ``key``, or None."""
        return self._values.get(key)

    def put(self, key: str, value: T) -> None:
        """Keep ``value`` under ``key``."""
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self._max_entries:
                self._values.popitem(last=False)


def body_key(exchange: str, version: str, *parts: object) -> str:
    """A short stable key of one body: its exchange, version and parameters."""
    text = "|".join(str(part) for part in (exchange, version, *parts))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class TrackRecordStore:
    """Serves track-record bodies (views) per exchange and key, with the tier that served them."""

    def __init__(
        self,
        *,
        database: Database,
        shared: SharedTier | None = None,
        version_check_interval_s: float = 1.0,
        max_entries: int = 256,
        clock_s: Callable[[], float] = time.monotonic,
        spawn: Spawn = in_background,
    ) -> None:
        self._database = database
        self._shared = shared
        self._interval_s = version_check_interval_s
        self._clock_s = clock_s
        self._lock = threading.Lock()
        self._versions: dict[str, tuple[str, float]] = {}  # exchange -> (version, checked at, monotonic)
        self._bodies: BoundedMemo[View] = BoundedMemo(max_entries=max_entries)
        self._refreshes: SingleFlight[str] = SingleFlight(failure_event="track_record_version_failed", spawn=spawn)

    def cached_version(self, exchange: str) -> str | None:
        """The exchange's version when it was checked within the interval; never does I/O."""
        found = self._versions.get(exchange)
        if found is None or self._clock_s() - found[1] >= self._interval_s:
            return None
        return found[0]

    def known_version(self, exchange: str) -> str | None:
        """The exchange's version without I/O: checked within the interval, or the last one read while one background
        re-read runs; None before the first read."""
        found = self._versions.get(exchange)
        if found is None:
            return None
        if self._clock_s() - found[1] >= self._interval_s:
            self._refreshes.start(exchange, partial(self.version, exchange), exchange=exchange)
        return found[0]

    def version(self, exchange: str, *, use_cache: bool = True) -> str:
        """The exchange's version, re-read from the database when the last check is overdue (blocking)."""
        found = self.cached_version(exchange) if use_cache else None
        if found is not None:
            return found
        checked_at_s = self._clock_s()
        latest = self._database.read(lambda conn: TrackRecordReads(conn).latest_scored_at(exchange=exchange))
        version = NOTHING_SCORED if latest is None else latest.isoformat()
        with self._lock:
            self._versions[exchange] = (version, checked_at_s)
        return version

    def peek(self, key: str) -> View | None:
        """The per-process copy of ``key``'s body, or None; never does I/O."""
        return self._bodies.get(key)

    def get(self, exchange: str, key: str, load: Load, *, use_cache: bool = True) -> tuple[View, str]:
        """``key``'s body and its tier: memory, then Redis, then ``load`` on the database (blocking)."""
        if use_cache:
            found = self.peek(key)
            if found is not None:
                return found, MEMORY
            found = self._from_redis(exchange, key)
            if found is not None:
                self._remember(key, found)
                return found, REDIS
        view = self._database.read(lambda conn: load(TrackRecordReads(conn)))
        if use_cache:
            self._remember(key, view)
            self._to_redis(exchange, key, view)
        return view, DATABASE

    def _remember(self, key: str, view: View) -> None:
        self._bodies.put(key, view)

    def _from_redis(self, exchange: str, key: str) -> View | None:
        payload = None if self._shared is None else self._shared.read(f"track-record:{exchange}:{key}", what=WHAT)
        if payload is None:
            return None
        try:
            view = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("track_record_cache_payload_invalid", exchange=exchange, key=key)
            return None
        return view if isinstance(view, dict) else None

    def _to_redis(self, exchange: str, key: str, view: View) -> None:
        if self._shared is not None:
            self._shared.write(f"track-record:{exchange}:{key}", dump_json(view), what=WHAT)
