"""Budgets in fixed one-minute windows: shared through Redis, or counted in this process. Two budgets use them:
each key's requests (``ratelimit``) and each client's failed keys (``failedkeys``, ``app.api.key_throttle``).

Invariants:
- ``RedisRateLimiter`` counts every API process's hits for a key in one Redis counter per wall-clock minute
  (``{prefix}:{namespace}:{key_id}:{minute}``, INCRBY + EXPIRE), so N processes share one budget. Requests never
  wait for Redis: local hits are sent in batches every ``sync_interval_s`` (default 0.1 s).
- It never fails a request: on a Redis error it trips the circuit breaker it shares with the snapshot reader
  (so one failing Redis costs one timeout for both), and counts in-process while Redis is skipped (each process
  then enforces the budget on its own share of the traffic).
- ``hit`` returns None when allowed, else the whole seconds (>= 1) until the window refills (``Retry-After``);
  ``peek`` answers the same without counting.
- Each process tracks at most ``max_keys`` keys per window (the failed-key budget is keyed by client address, which
  a caller can vary): beyond that, counts of earlier windows are dropped, then the current window's start over.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from app.storage.redis_client import RedisClient
from app.storage.resp import Arg, RedisError, describe

log = structlog.get_logger(__name__)

WINDOW_S = 60.0
COUNTER_TTL_S = 120  # a window's counter outlives its minute, then expires
MAX_KEYS = 100_000


class Limiter(Protocol):
    """Counts one request of a key against its per-minute budget."""

    def hit(self, key_id: str, *, limit_per_min: int) -> int | None:
        """None when allowed, else the seconds until the budget refills."""
        ...

    def peek(self, key_id: str, *, limit_per_min: int) -> int | None:
        """``hit``'s answer without counting a request."""
        ...


class Breaker(Protocol):
    """A circuit breaker around one Redis: skipped for a while after a failure."""

    def cache_usable(self) -> bool:
        """False while Redis is being skipped."""
        ...

    def trip_cache(self, reason: str) -> None:
        """Record a failure: skip Redis for a while."""
        ...


def _retry_after_s(window: int, now_s: float) -> int:
    return max(1, math.ceil((window + 1) * WINDOW_S - now_s))


def _bound(counts: dict[Any, Any], *, window: int, window_of: Callable[[Any, Any], int], max_keys: int) -> None:
    """Keep ``counts`` under ``max_keys``: drop other windows' entries, then everything if still too many."""
    if len(counts) < max_keys:
        return
    for stale in [key for key, value in counts.items() if window_of(key, value) != window]:
        del counts[stale]
    if len(counts) >= max_keys:
        log.warning("rate_counts_reset", tracked=len(counts), max_keys=max_keys)
        counts.clear()


class RateLimiter:
    """Counts requests per key in the current minute window, in this process."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key_id: str, *, limit_per_min: int) -> int | None:
        """Count one request; None when allowed, else the whole seconds until the budget refills."""
        return self._count(key_id, limit_per_min=limit_per_min, add=1)

    def peek(self, key_id: str, *, limit_per_min: int) -> int | None:
        """None while ``key_id`` has budget left in this window, else the seconds until it refills; counts nothing."""
        return self._count(key_id, limit_per_min=limit_per_min, add=0)

    def _count(self, key_id: str, *, limit_per_min: int, add: int) -> int | None:
        now_s = self._clock()
        window = int(now_s // WINDOW_S)
        with self._lock:
            current, count = self._windows.get(key_id, (window, 0))
            if current != window:
                count = 0
            if count >= limit_per_min:
                return _retry_after_s(window, now_s)
            if add:
                if key_id not in self._windows:
                    _bound(self._windows, window=window, window_of=lambda _, v: v[0], max_keys=self._max_keys)
                self._windows[key_id] = (window, count + add)
        return None


@dataclass(slots=True)
class _SharedCount:
    """One key's count in one window: the last total Redis reported and the local hits not yet sent."""

    shared: int = 0
    pending: int = 0


class RedisRateLimiter:
    """Counts requests per key and minute in Redis, shared by every API process; in-process while Redis fails.

    The request path never waits for Redis: hits are counted locally against the last total Redis reported, and
    ``sync()`` (every ``sync_interval_s`` on a background thread) adds the local hits with INCRBY and learns the
    new total. So a key's budget is shared across processes with a delay of one sync interval; the overshoot is
    at most (processes x request rate x ``sync_interval_s``).
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str,
        fallback: Limiter,
        breaker: Breaker,
        namespace: str = "ratelimit",
        sync_interval_s: float = 0.1,
        clock: Callable[[], float] = time.time,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._namespace = namespace
        self._max_keys = max_keys
        self._fallback = fallback
        self._breaker = breaker
        self._sync_interval_s = sync_interval_s
        self._clock = clock
        self._counts: dict[tuple[str, int], _SharedCount] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def counter_key(self, key_id: str, window: int) -> str:
        """The Redis key counting ``key_id``'s hits in minute ``window`` (epoch seconds // 60)."""
        return f"{self._prefix}:{self._namespace}:{key_id}:{window}"

    def hit(self, key_id: str, *, limit_per_min: int) -> int | None:
        """Count one request against the shared total (no I/O); None when allowed."""
        if not self._breaker.cache_usable():
            return self._fallback.hit(key_id, limit_per_min=limit_per_min)
        now_s = self._clock()
        window = int(now_s // WINDOW_S)
        with self._lock:
            count = self._counts.get((key_id, window))
            if count is None:
                _bound(self._counts, window=window, window_of=lambda key, _: key[1], max_keys=self._max_keys)
                count = self._counts[(key_id, window)] = _SharedCount()
            if count.shared + count.pending >= limit_per_min:
                return _retry_after_s(window, now_s)
            count.pending += 1
        return None

    def peek(self, key_id: str, *, limit_per_min: int) -> int | None:
        """``hit``'s answer from the last shared total and the local hits, counting nothing (no I/O). A key this
        process never counted is not tracked, so its total is learnt one sync after its first hit here."""
        if not self._breaker.cache_usable():
            return self._fallback.peek(key_id, limit_per_min=limit_per_min)
        now_s = self._clock()
        window = int(now_s // WINDOW_S)
        count = self._counts.get((key_id, window))
        if count is not None and count.shared + count.pending >= limit_per_min:
            return _retry_after_s(window, now_s)
        return None

    def sync(self) -> None:
        """Send the local hits to Redis (one pipelined round trip) and learn every tracked key's total."""
        current = int(self._clock() // WINDOW_S)
        with self._lock:
            for stale in [key for key in self._counts if key[1] < current - 1]:
                del self._counts[stale]
            # Keys without local hits are refreshed too (INCRBY 0): other processes may have used their budget.
            batch = {key: count.pending for key, count in self._counts.items()}
        if not batch or not self._breaker.cache_usable():
            return
        commands: list[list[Arg]] = []
        for (key_id, window), pending in batch.items():
            counter = self.counter_key(key_id, window)
            commands += (["INCRBY", counter, pending], ["EXPIRE", counter, COUNTER_TTL_S])
        try:
            replies = self._client.pipeline(commands)
        except RedisError as exc:
            self._breaker.trip_cache(f"rate limiter: {describe(exc)}")
            log.warning("rate_limit_redis_failed", error=str(exc))
            return
        with self._lock:
            for (key, sent), total in zip(batch.items(), replies[::2], strict=True):
                count = self._counts.setdefault(key, _SharedCount())
                count.pending -= sent
                count.shared = int(total)

    def start(self) -> None:
        """Sync every ``sync_interval_s`` on a daemon thread until ``stop()``."""
        self._thread = threading.Thread(target=self._run, name="dantaro-rate-limit-sync", daemon=True)
        self._thread.start()

    def stop(self, *, timeout_s: float = 2.0) -> None:
        """Stop the sync thread after one last sync."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.sync()

    def _run(self) -> None:
        while not self._stop.wait(self._sync_interval_s):
            self.sync()
