"""Serve stale, refresh once: at most one background refresh per key at a time (single flight).

Used where a request is answered from a value that has just expired (the API key verifier's cache, the snapshot
reader's per-process copy) while one background refresh re-checks it, so no request waits and a burst of
requests cannot stampede the database or Redis.

Invariants:
- ``start(key, work)`` runs ``work`` in the background only when no refresh of ``key`` is running, and says
  whether it did; the key is released when ``work`` ends (returns or raises), so the next caller past the stale
  point starts the next refresh. Different keys refresh independently. Thread-safe.
- ``work`` runs off the caller's thread (it may block on I/O): on the running event loop's default executor when
  called from a loop, else on a daemon thread (``in_background``; tests pass their own ``spawn``).
- A refresh never raises: an exception is logged as the owner's ``failure_event`` with ``error_type`` and the
  caller's ``log_fields`` (never the key: it may be secret) and swallowed; the owner keeps serving what it has.
- ``Joined.run(key, call)`` (asyncio, one event loop): concurrent awaits of one key share one ``call``; each
  awaiter gets its result or its exception; one awaiter's cancellation does not cancel the call for the others.
- Stdlib and structlog only, so every layer (``api``, ``storage``) may use it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable, Mapping
from functools import partial
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
Spawn = Callable[[Callable[[], None]], None]


def in_background(job: Callable[[], None]) -> None:
    """Run ``job`` on the running event loop's default executor, or on a daemon thread outside a loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        threading.Thread(target=job, name="dantaro-refresh", daemon=True).start()
        return
    loop.run_in_executor(None, job)


class SingleFlight(Generic[K]):
    """Starts background refreshes, at most one per key at a time; failures are logged, never raised."""

    def __init__(self, *, failure_event: str, spawn: Spawn = in_background) -> None:
        self._failure_event = failure_event
        self._spawn = spawn
        self._running: set[K] = set()
        self._lock = threading.Lock()

    def start(self, key: K, work: Callable[[], object], **log_fields: object) -> bool:
        """Run ``work`` in the background unless a refresh of ``key`` is running; True when this call started it."""
        with self._lock:
            if key in self._running:
                return False
            self._running.add(key)
        try:
            self._spawn(partial(self._run, key, work, log_fields))
        except BaseException:  # nothing was scheduled (e.g. the executor is shut down): do not hold the key
            self._release(key)
            raise
        return True

    def _run(self, key: K, work: Callable[[], object], log_fields: Mapping[str, object]) -> None:
        try:
            work()
        except Exception as exc:
            log.warning(self._failure_event, error_type=type(exc).__name__, **log_fields)
        finally:
            self._release(key)

    def _release(self, key: K) -> None:
        with self._lock:
            self._running.discard(key)


class Joined(Generic[K, T]):
    """Concurrent awaits of one key share one call (a burst of identical misses does the work once)."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[T]] = {}

    async def run(self, key: K, call: Callable[[], Awaitable[T]]) -> T:
        """The result of the call running for ``key``, or of ``call()`` started now."""
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(call())
            self._running[key] = running
            running.add_done_callback(partial(self._done, key))
        return await asyncio.shield(running)

    def _done(self, key: K, finished: asyncio.Future[T]) -> None:
        self._running.pop(key, None)
        if not finished.cancelled():
            finished.exception()  # retrieved here too: no "never retrieved" warning when every awaiter left
