"""How many live streams each API key holds open: at most ``limit`` at once, across every API process when Redis is
configured, else in this process.

Invariants:
- ``RedisStreamSlots`` keeps one sorted set per key (``{prefix}:streams:{key_id}``): a member per open stream,
  scored by its lease's expiry (epoch seconds). Opening drops expired members, counts and adds in one Lua script
  (atomic, so two processes cannot both take the last slot). An open stream renews its lease on every heartbeat;
  a killed process's streams stop counting when their leases expire (``lease_s``).
- A Redis failure never refuses a stream because of Redis: it trips the breaker shared with the snapshot reader
  and the slot is taken in this process instead (each process then enforces the limit on its own streams).
- ``acquire`` returns a lease token (None when the key is at its limit); ``release`` with that token frees the
  slot where it was taken. Thread-safe; Redis calls block (the caller runs them in the threadpool).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import structlog

from app.api.ratelimit import Breaker
from app.storage.redis_client import RedisClient, Script
from app.storage.resp import RedisError, describe

log = structlog.get_logger(__name__)

LOCAL = "local:"  # prefix of the tokens of slots taken in this process

# KEYS[1] the key's set; ARGV: now, expiry, limit, member, ttl (s). Returns 1 when the slot was taken, else 0.
_ACQUIRE = Script("""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
""")


class StreamSlots(Protocol):
    """Counts a key's open streams against its limit."""

    def acquire(self, key_id: str, *, limit: int) -> str | None:
        """A lease token for one more stream, or None when the key already holds ``limit``."""
        ...

    def renew(self, key_id: str, token: str) -> None:
        """Keep the lease alive (an open stream calls this on every heartbeat)."""
        ...

    def release(self, key_id: str, token: str) -> None:
        """Free the slot (the stream ended)."""
        ...


class LocalStreamSlots:
    """Open streams per key in this process."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, key_id: str, *, limit: int) -> str | None:
        """A token when the key holds fewer than ``limit`` streams in this process."""
        with self._lock:
            if self._open[key_id] >= limit:
                return None
            self._open[key_id] += 1
        return LOCAL + os.urandom(8).hex()

    def renew(self, key_id: str, token: str) -> None:
        """Nothing to renew: the count lives as long as the process."""

    def release(self, key_id: str, token: str) -> None:
        """Free one of the key's slots."""
        with self._lock:
            self._open[key_id] -= 1
            if self._open[key_id] <= 0:
                del self._open[key_id]


class RedisStreamSlots:
    """Open streams per key shared by every API process through Redis leases; in-process while Redis fails."""

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str,
        lease_s: float,
        breaker: Breaker,
        fallback: LocalStreamSlots,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._lease_s = lease_s
        self._breaker = breaker
        self._fallback = fallback
        self._clock_s = clock_s

    def key(self, key_id: str) -> str:
        """The sorted set of ``key_id``'s open streams."""
        return f"{self._prefix}:streams:{key_id}"

    def acquire(self, key_id: str, *, limit: int) -> str | None:
        """A token when the key holds fewer than ``limit`` streams in all processes (in this one when Redis fails)."""
        if not self._breaker.cache_usable():
            return self._fallback.acquire(key_id, limit=limit)
        token = os.urandom(12).hex()
        now_s = self._clock_s()
        args: list[float | int | str] = [now_s, now_s + self._lease_s, limit, token, int(self._lease_s) + 1]
        try:
            taken = self._client.run_script(_ACQUIRE, keys=[self.key(key_id)], args=args)
        except RedisError as exc:
            self._trip("acquire", exc)
            return self._fallback.acquire(key_id, limit=limit)
        return token if int(taken) == 1 else None

    def renew(self, key_id: str, token: str) -> None:
        """Push the lease's expiry ``lease_s`` ahead."""
        if token.startswith(LOCAL) or not self._breaker.cache_usable():
            return
        try:
            self._client.pipeline(
                [
                    ["ZADD", self.key(key_id), "XX", self._clock_s() + self._lease_s, token],
                    ["EXPIRE", self.key(key_id), int(self._lease_s) + 1],
                ]
            )
        except RedisError as exc:
            self._trip("renew", exc)

    def release(self, key_id: str, token: str) -> None:
        """Free the slot where it was taken (an unreachable Redis lets the lease expire instead)."""
        if token.startswith(LOCAL):
            self._fallback.release(key_id, token)
            return
        try:
            self._client.execute("ZREM", self.key(key_id), token)
        except RedisError as exc:
            self._trip("release", exc)

    def _trip(self, operation: str, exc: RedisError) -> None:
        self._breaker.trip_cache(f"stream slots: {describe(exc)}")
        log.warning("stream_slots_redis_failed", operation=operation, error=str(exc))
