"""Cache tiers for published snapshots: in-process (``MemoryCache``) and shared (``RedisCache``).

Invariants:
- ``put`` stores the run's payload first, then flips the exchange's current-run pointer, then notifies; a
  reader that sees a pointer can always fetch its payload (Redis: one MULTI/EXEC, and payloads outlive
  pointers by ``PAYLOAD_GRACE_S`` so expiry never leaves a dangling pointer).
- Payloads are ``codec`` JSON (never pickle). Redis keys: ``{prefix}:snapshot:{exchange}:{run_id}`` (TTL),
  pointer ``{prefix}:current:{exchange}`` (TTL), notifications on channel ``{prefix}:runs``.
- Every cache failure (connection, timeout, malformed payload) raises ``CacheError``; callers fall back to the
  database. ``RedisCache`` talks through ``RedisCommands``: the API's ``app.storage.redis_client.RedisClient``
  or the worker's redis-py (``app.storage.redis_py``); both connect on first use, never at import time.
- ``RunNotificationListener`` turns channel messages into ``listener(exchange, run_id)`` calls on its own thread;
  notifications are best effort (pub/sub does not queue), so readers also poll the pointer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson
import structlog

from app.domain import Snapshot
from app.storage.codec import decode_snapshot, encode_snapshot
from app.storage.redis_client import RedisClient, Subscription
from app.storage.resp import Arg, RedisError, describe

log = structlog.get_logger(__name__)

PAYLOAD_GRACE_S = 60.0

RunListener = Callable[[str, str], None]


class CacheError(Exception):
    """The cache could not be read or written."""


class RedisCommands(Protocol):
    """The Redis calls ``RedisCache`` makes; failures raise ``app.storage.resp.RedisError``."""

    def execute(self, *args: Arg) -> Any:
        """Run one command and return its reply."""
        ...

    def pipeline(self, commands: Sequence[Sequence[Arg]], *, transaction: bool = False) -> list[Any]:
        """Run the commands in one round trip (MULTI/EXEC when ``transaction``)."""
        ...

    def close(self) -> None:
        """Close the client's connections."""
        ...


class SnapshotCache(Protocol):
    """Where published snapshots are shared with readers; ``source_name`` is the reader's data_source label."""

    source_name: str

    def put(self, snapshot: Snapshot) -> None:
        """Store the snapshot, then make it the exchange's current run, then notify."""
        ...

    def current_run_id(self, exchange: str) -> str | None:
        """The exchange's current run id, or None."""
        ...

    def get(self, exchange: str, run_id: str) -> Snapshot | None:
        """The snapshot of that run, or None if it is not cached."""
        ...


class MemoryCache:
    """A thread-safe in-process cache (the embedded single-process mode).

    A replaced run stays readable for ``PAYLOAD_GRACE_S`` (like Redis payloads outliving pointers), so a reader
    that saw the old pointer can still fetch its payload.
    """

    source_name = "cache"

    def __init__(self, *, clock_s: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock_s = clock_s
        self._snapshots: dict[tuple[str, str], Snapshot] = {}
        self._current: dict[str, str] = {}
        self._replaced_at_s: dict[tuple[str, str], float] = {}
        self._listeners: list[RunListener] = []

    def subscribe(self, listener: RunListener) -> None:
        """Call ``listener(exchange, run_id)`` after every pointer flip."""
        with self._lock:
            self._listeners.append(listener)

    def put(self, snapshot: Snapshot) -> None:
        """Store the snapshot, flip the pointer, notify listeners."""
        exchange, run_id = snapshot.exchange, snapshot.run_id
        now_s = self._clock_s()
        with self._lock:
            self._snapshots[(exchange, run_id)] = snapshot
            previous = self._current.get(exchange)
            self._current[exchange] = run_id
            if previous is not None and previous != run_id:
                self._replaced_at_s[(exchange, previous)] = now_s
            self._replaced_at_s.pop((exchange, run_id), None)
            self._forget_replaced(now_s)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(exchange, run_id)

    def current_run_id(self, exchange: str) -> str | None:
        """The exchange's current run id, or None."""
        with self._lock:
            return self._current.get(exchange)

    def get(self, exchange: str, run_id: str) -> Snapshot | None:
        """The cached snapshot of that run, or None."""
        with self._lock:
            return self._snapshots.get((exchange, run_id))

    def _forget_replaced(self, now_s: float) -> None:
        expired = [key for key, at_s in self._replaced_at_s.items() if now_s - at_s > PAYLOAD_GRACE_S]
        for key in expired:
            del self._replaced_at_s[key]
            del self._snapshots[key]


class RedisCache:
    """Snapshots shared through Redis between worker and API processes."""

    source_name = "redis"

    def __init__(self, client: RedisCommands, *, prefix: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._client = client
        self._prefix = prefix
        self._pointer_ttl_ms = int(ttl_s * 1000)
        self._payload_ttl_ms = int((ttl_s + PAYLOAD_GRACE_S) * 1000)

    @property
    def client(self) -> RedisCommands:
        """The Redis client (the API shares it with its notification listener and rate limiter)."""
        return self._client

    @property
    def channel(self) -> str:
        """The pub/sub channel announcing new runs (messages: ``{"exchange": ..., "run_id": ...}``)."""
        return f"{self._prefix}:runs"

    def payload_key(self, exchange: str, run_id: str) -> str:
        """The key holding one run's payload."""
        return f"{self._prefix}:snapshot:{exchange}:{run_id}"

    def pointer_key(self, exchange: str) -> str:
        """The key holding the exchange's current run id."""
        return f"{self._prefix}:current:{exchange}"

    def put(self, snapshot: Snapshot) -> None:
        """Payload, then pointer, then PUBLISH, in one MULTI/EXEC."""
        exchange, run_id = snapshot.exchange, snapshot.run_id
        message = orjson.dumps({"exchange": exchange, "run_id": run_id})
        commands: list[list[Arg]] = [
            ["SET", self.payload_key(exchange, run_id), encode_snapshot(snapshot), "PX", self._payload_ttl_ms],
            ["SET", self.pointer_key(exchange), run_id, "PX", self._pointer_ttl_ms],
            ["PUBLISH", self.channel, message],
        ]
        try:
            self._client.pipeline(commands, transaction=True)
        except RedisError as exc:
            raise _cache_error(exc) from exc

    def current_run_id(self, exchange: str) -> str | None:
        """The exchange's current run id, or None."""
        value = self._get(self.pointer_key(exchange))
        return None if value is None else _text(value)

    def get(self, exchange: str, run_id: str) -> Snapshot | None:
        """The cached snapshot of that run, or None."""
        data = self._get(self.payload_key(exchange, run_id))
        if data is None:
            return None
        try:
            snapshot = decode_snapshot(data)
        except ValueError as exc:
            raise CacheError(f"malformed cached snapshot {exchange}/{run_id}: {exc}") from exc
        if (snapshot.exchange, snapshot.run_id) != (exchange, run_id):
            raise CacheError(f"cached snapshot under {exchange}/{run_id} is {snapshot.exchange}/{snapshot.run_id}")
        return snapshot

    def _get(self, key: str) -> Any:
        try:
            return self._client.execute("GET", key)
        except RedisError as exc:
            raise _cache_error(exc) from exc


def _cache_error(exc: RedisError) -> CacheError:
    return CacheError(describe(exc))


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def parse_run_message(data: Any) -> tuple[str, str] | None:
    """``(exchange, run_id)`` from a notification on ``RedisCache.channel``, or None when malformed."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict):
        return None
    exchange, run_id = message.get("exchange"), message.get("run_id")
    if not isinstance(exchange, str) or not isinstance(run_id, str):
        return None
    return exchange, run_id


class RunNotificationListener:
    """Calls ``listener(exchange, run_id)`` for every run announced on a Redis channel, from a daemon thread.

    A lost connection is retried every ``reconnect_s``; notifications sent meanwhile are lost, which is why readers
    also re-check the pointer periodically. ``stop()`` ends the thread within about ``poll_s``.
    """

    def __init__(
        self, client: RedisClient, *, channel: str, listener: RunListener, poll_s: float = 0.2, reconnect_s: float = 1.0
    ) -> None:
        self._client = client
        self._channel = channel
        self._listener = listener
        self._poll_s = poll_s
        self._reconnect_s = reconnect_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dantaro-run-listener", daemon=True)
        self.subscribed = threading.Event()  # set while a subscription is live (tests wait on it)

    def start(self) -> None:
        """Start listening in the background."""
        self._thread.start()

    def stop(self, *, timeout_s: float = 2.0) -> None:
        """Stop listening and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen_once()
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                log.warning("run_listener_disconnected", channel=self._channel, error=str(exc))
                self._stop.wait(self._reconnect_s)

    def _listen_once(self) -> None:
        subscription: Subscription = self._client.subscribe(self._channel)
        try:
            self.subscribed.set()
            while not self._stop.is_set():
                data = subscription.get_message(timeout_s=self._poll_s)
                if data is not None:
                    self._deliver(data)
        finally:
            self.subscribed.clear()
            subscription.close()

    def _deliver(self, data: Any) -> None:
        parsed = parse_run_message(data)
        if parsed is None:
            log.warning("run_notification_malformed", channel=self._channel)
            return
        self._listener(*parsed)
