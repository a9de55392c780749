"""The read side of published snapshots: per-process copy -> cache tier -> database.

Invariants:
- A returned snapshot is always a whole published run (the cache stores whole payloads; the database commits a
  run in one transaction).
- The per-process copy is keyed by run id and re-validated against the current pointer (the cache's, or the
  database's when there is no usable cache) at most every ``memory_check_interval_s``; so a newer run is served
  at most that long after it was published. When the check is overdue, ``serve_stale`` serves the copy while one
  background re-check per exchange runs (``app.single_flight``): no request waits for it; failures are logged.
- Cache failures are logged and fall through to the database; after one, the cache is skipped for
  ``cache_retry_after_s`` so an outage costs one timeout per interval, not one per request. Other users of
  the same Redis (the API's rate limiter) share this breaker through ``cache_usable`` / ``trip_cache``.
- ``on_published`` (wired to the cache's notifications) drops a superseded copy at once, so a new run reaches
  this process as soon as the notification does; the periodic check covers lost notifications.
- Thread-safe: the state is two small dicts guarded by a lock that is never held during I/O.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import structlog

from app.domain import Snapshot
from app.single_flight import SingleFlight, Spawn, in_background
from app.storage.cache import CacheError, SnapshotCache
from app.storage.queries import runs
from app.storage.sql import Database, SqlConnection

log = structlog.get_logger(__name__)

MEMORY = "memory"
DATABASE = "database"


@dataclass(frozen=True, slots=True)
class _Entry:
    snapshot: Snapshot
    checked_at_s: float  # monotonic clock


class SnapshotReader:
    """Serves the newest published snapshot per exchange with its data source."""

    def __init__(
        self,
        *,
        database: Database,
        cache: SnapshotCache | None,
        memory_check_interval_s: float = 1.0,
        cache_retry_after_s: float = 5.0,
        clock_s: Callable[[], float] = time.monotonic,
        spawn: Spawn = in_background,
    ) -> None:
        self._database = database
        self._cache = cache
        self._interval_s = memory_check_interval_s
        self._retry_after_s = cache_retry_after_s
        self._clock_s = clock_s
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._refreshes: SingleFlight[str] = SingleFlight(failure_event="snapshot_refresh_failed", spawn=spawn)
        self._cache_down_until_s = float("-inf")

    def get(self, exchange: str, *, use_cache: bool = True) -> tuple[Snapshot, str] | None:
        """``(snapshot, data_source)`` for the exchange's newest run, or None if nothing was published."""
        if not use_cache:
            snapshot = self._database.read(lambda conn: runs.latest_snapshot(conn, exchange=exchange))
            return None if snapshot is None else (snapshot, DATABASE)
        now_s = self._clock_s()
        with self._lock:
            entry = self._entries.get(exchange)
        if entry is not None and now_s - entry.checked_at_s < self._interval_s:
            return entry.snapshot, MEMORY
        found = self._from_cache(exchange, entry, now_s) if self._cache_usable(now_s) else None
        return found or self._from_database(exchange, entry, now_s)

    def peek(self, exchange: str) -> tuple[Snapshot, str] | None:
        """The per-process copy when it was checked within ``memory_check_interval_s``; never does I/O."""
        now_s = self._clock_s()
        entry = self._entries.get(exchange)  # a dict read is atomic; the lock guards read-modify-write only
        if entry is not None and now_s - entry.checked_at_s < self._interval_s:
            return entry.snapshot, MEMORY
        return None

    def serve_stale(self, exchange: str) -> tuple[Snapshot, str] | None:
        """The per-process copy whatever the age of its check, while one background ``get`` re-checks it; no I/O.

        Call it when ``peek`` found the check overdue; None when there is no copy (the caller must ``get``).
        """
        entry = self._entries.get(exchange)
        if entry is None:
            return None
        self._refreshes.start(exchange, partial(self.get, exchange), exchange=exchange)
        return entry.snapshot, MEMORY

    def on_published(self, exchange: str, run_id: str) -> None:
        """A run was announced: drop the per-process copy unless it already is that run."""
        with self._lock:
            entry = self._entries.get(exchange)
            if entry is not None and entry.snapshot.run_id != run_id:
                del self._entries[exchange]

    def cache_usable(self) -> bool:
        """False while a recent failure keeps the shared cache skipped (or when there is none)."""
        return self._cache_usable(self._clock_s())

    def trip_cache(self, reason: str) -> None:
        """Skip the shared cache for ``cache_retry_after_s`` (another user of the same Redis saw it fail)."""
        with self._lock:
            self._cache_down_until_s = self._clock_s() + self._retry_after_s
        log.warning("snapshot_cache_skipped", reason=reason, retry_after_s=self._retry_after_s)

    def cache_status(self) -> str:
        """``none`` (no shared cache), ``ok``, or ``down`` while a failure keeps the cache skipped."""
        if self._cache is None:
            return "none"
        return "ok" if self._cache_usable(self._clock_s()) else "down"

    def _cache_usable(self, now_s: float) -> bool:
        with self._lock:
            return self._cache is not None and now_s >= self._cache_down_until_s

    def _from_cache(self, exchange: str, entry: _Entry | None, now_s: float) -> tuple[Snapshot, str] | None:
        cache = self._cache
        assert cache is not None  # checked by _cache_usable
        try:
            run_id = cache.current_run_id(exchange)
            if run_id is None:
                return None
            if entry is not None and entry.snapshot.run_id == run_id:
                return self._remember(exchange, entry.snapshot, now_s), MEMORY
            snapshot = cache.get(exchange, run_id)
        except CacheError as exc:
            with self._lock:
                self._cache_down_until_s = now_s + self._retry_after_s
            log.warning("snapshot_cache_read_failed", exchange=exchange, error=str(exc))
            return None
        if snapshot is None:
            return None
        return self._remember(exchange, snapshot, now_s), cache.source_name

    def _from_database(self, exchange: str, entry: _Entry | None, now_s: float) -> tuple[Snapshot, str] | None:
        kept = None if entry is None else entry.snapshot

        def newest(conn: SqlConnection) -> Snapshot | None:
            run_id = runs.latest_run_id(conn, exchange=exchange)
            if run_id is None or (kept is not None and kept.run_id == run_id):
                return None if run_id is None else kept
            return runs.latest_snapshot(conn, exchange=exchange)

        snapshot = self._database.read(newest)
        if snapshot is None:
            return None
        return self._remember(exchange, snapshot, now_s), MEMORY if snapshot is kept else DATABASE

    def _remember(self, exchange: str, snapshot: Snapshot, now_s: float) -> Snapshot:
        with self._lock:
            current = self._entries.get(exchange)
            # Never replace a newer copy another thread stored meanwhile with an older one.
            if current is None or current.snapshot.run_id == snapshot.run_id or current.checked_at_s <= now_s:
                self._entries[exchange] = _Entry(snapshot, now_s)
        return snapshot
