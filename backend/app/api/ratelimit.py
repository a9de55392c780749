"""Per-key request budgets in fixed one-minute windows: shared through Redis, or counted in this process.

Invariants:
- ``RedisRateLimiter`` counts every API process's requests for a key in one Redis counter per wall-clock minute
  (``{prefix}:ratelimit:{key_id}:{minute}``, INCRBY + EXPIRE), so N processes share one budget. Requests never
  wait for Redis: local hits are sent in batches every ``sync_interval_s`` (default 0.1 s).
- It never fails a request: on a Redis error it trips the circuit breaker it shares with the snapshot reader
  (so one failing Redis costs one timeout for both), and counts in-process while Redis is skipped (each process
  then enforces the budget on its own share of the traffic).
- ``hit`` returns None when allowed, else the whole seconds (>= 1) until the window refills (``Retry-After``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis
import structlog

log = structlog.get_logger(__name__)

WINDOW_S = 60.0
COUNTER_TTL_S = 120  # a window's counter outlives its minute, then expires


class Limiter(Protocol):
    """Counts one request of a key against its per-minute budget."""

    def hit(self, key_id: str, *, limit_per_min: int) -> int | None:
        """None when allowed, else the seconds until the budget refills."""
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


class RateLimiter:
    """Counts requests per key in the current minute window, in this process."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key_id: str, *, limit_per_min: int) -> int | None:
        """Count one request; None when allowed, else the whole seconds until the budget refills."""
        now_s = self._clock()
        window = int(now_s // WINDOW_S)
        with self._lock:
            current, count = self._windows.get(key_id, (window, 0))
            if current != window:
                count = 0
            if count >= limit_per_min:
                return _retry_after_s(window, now_s)
            self._windows[key_id] = (window, count + 1)
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
        client: redis.Redis,
        *,
        prefix: str,
        fallback: Limiter,
        breaker: Breaker,
        sync_interval_s: float = 0.1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._fallback = fallback
        self._breaker = breaker
        self._sync_interval_s = sync_interval_s
        self._clock = clock
        self._counts: dict[tuple[str, int], _SharedCount] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def counter_key(self, key_id: str, window: int) -> str:
        """The Redis key counting ``key_id``'s requests in minute ``window`` (epoch seconds // 60)."""
        return f"{self._prefix}:ratelimit:{key_id}:{window}"

    def hit(self, key_id: str, *, limit_per_min: int) -> int | None:
        """Count one request against the shared total (no I/O); None when allowed."""
        if not self._breaker.cache_usable():
            return self._fallback.hit(key_id, limit_per_min=limit_per_min)
        now_s = self._clock()
        window = int(now_s // WINDOW_S)
        with self._lock:
            count = self._counts.get((key_id, window))
            if count is None:
                count = self._counts[(key_id, window)] = _SharedCount()
            if count.shared + count.pending >= limit_per_min:
                return _retry_after_s(window, now_s)
            count.pending += 1
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
        pipe = self._client.pipeline(transaction=False)
        for (key_id, window), pending in batch.items():
            pipe.incrby(self.counter_key(key_id, window), pending)
            pipe.expire(self.counter_key(key_id, window), COUNTER_TTL_S)
        try:
            replies = pipe.execute()
        except redis.RedisError as exc:
            self._breaker.trip_cache(f"rate limiter: redis {type(exc).__name__}: {exc}")
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
