"""The live stream's source in one API process: ``RunHub`` learns of newly published runs and hands each one to every
open stream; ``Cursor`` is a stream's position, sent as the SSE event id and read back from ``Last-Event-ID``.

Invariants:
- New runs are learnt from the database feed (``app.storage.queries.run_feed``), woken by the publish notification (the
  in-process cache's callback or the Redis channel, delivered within a second) and polled every
  ``poll_interval_s`` while a stream is open (notifications are best effort: Redis pub/sub does not queue, and a
  publish whose cache write failed sends none). The hub polls nothing while no stream is open.
- A subscription starts at the hub's current position (registered in the same event-loop step that copies it), so
  a run published after ``subscribe`` returns is delivered to it, exactly once per stream (``Cursor.advance``
  drops anything at or before the stream's position, such as a run both replayed and broadcast).
- A cursor holds, for each exchange a stream follows, the last run it delivered (or None: none published yet). An
  exchange's runs are published one at a time, so "after run R of exchange E" is exact; runs of different exchanges
  never order each other. The text form is ``exchange:run_id`` pairs joined by commas (empty run id: none).
- ``close()`` (server shutdown) ends every open stream and refuses new ones; uvicorn waits for open responses, so
  the server calls it before waiting (``app.server``).
- Thread-safe entry point: ``notify`` (called from the Redis listener's thread or the worker's publish); everything
  else runs on the event loop. Database reads run in the threadpool.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from app.storage.queries.run_feed import PublishedRun, RunFeedRepository
from app.storage.sql import Database

log = structlog.get_logger(__name__)
T = TypeVar("T")

QUEUE_LIMIT = 1000  # runs waiting for one stream; a stream that falls this far behind is ended (it resumes)
FETCH_LIMIT = 100  # runs per exchange read in one poll
CURSOR_MAX_CHARS = 2000
_CURSOR_PART = re.compile(r"([a-z0-9][a-z0-9_.-]{0,63}):([A-Za-z0-9_.-]{0,64})")


class StreamClosedError(Exception):
    """The hub is closed (the server is shutting down): no new stream."""


class CursorError(ValueError):
    """A ``Last-Event-ID`` that this API did not send."""


def parse_cursor(text: str) -> dict[str, str]:
    """``exchange -> run id`` ('' = none yet) from a cursor's text; ``CursorError`` when malformed."""
    if len(text) > CURSOR_MAX_CHARS:
        raise CursorError(f"Last-Event-ID is longer than {CURSOR_MAX_CHARS} characters")
    parsed: dict[str, str] = {}
    for part in text.split(","):
        match = _CURSOR_PART.fullmatch(part.strip())
        if match is None:
            raise CursorError("Last-Event-ID must be the id of an event this stream sent (exchange:run_id,...)")
        parsed[match.group(1)] = match.group(2)
    return parsed


@dataclass(slots=True)
class Cursor:
    """A stream's position: the last run delivered per exchange it follows."""

    runs: dict[str, PublishedRun | None]

    def advance(self, run: PublishedRun) -> bool:
        """Move past ``run`` when it is new for this stream (its exchange followed, after the position)."""
        if run.exchange not in self.runs:
            return False
        current = self.runs[run.exchange]
        if current is not None and run.position <= current.position:
            return False
        self.runs[run.exchange] = run
        return True

    def text(self) -> str:
        """The SSE event id: ``exchange:run_id`` pairs in a stable order."""
        return ",".join(f"{name}:{run.run_id if run else ''}" for name, run in sorted(self.runs.items()))


_CLOSE = None  # the sentinel a closing hub puts in every queue


@dataclass(eq=False, slots=True)
class Subscription:
    """One open stream's queue of runs (``None`` = the hub closed) and where it started."""

    exchanges: frozenset[str]
    start: dict[str, PublishedRun | None]
    queue: asyncio.Queue[PublishedRun | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False

    def offer(self, item: PublishedRun | None) -> None:
        """Queue ``item``; a full queue ends the stream (the client resumes from its last event id)."""
        if item is not None and item.exchange not in self.exchanges:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(_CLOSE)


class RunHub:
    """Fans the runs published to the database out to this process's open streams."""

    def __init__(
        self,
        *,
        database: Database,
        exchanges: Iterable[str],
        poll_interval_s: float,
    ) -> None:
        self._database = database
        self._exchanges = tuple(exchanges)
        self._poll_interval_s = poll_interval_s
        self._subscriptions: set[Subscription] = set()
        self._latest: dict[str, PublishedRun | None] | None = None  # None: not tracking (no stream open)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called (no new stream)."""
        return self._closed

    @property
    def open_streams(self) -> int:
        """Streams open in this process."""
        return len(self._subscriptions)

    def start(self) -> None:
        """Start the hub's loop on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="dantaro-run-hub")

    def notify(self, exchange: str, run_id: str) -> None:
        """A run was announced (any thread): look for new runs now."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop stopped between the check and the call
            loop.call_soon_threadsafe(self._wake.set)

    async def subscribe(self, exchanges: Iterable[str]) -> Subscription:
        """A new stream of ``exchanges``' runs from now on; ``StreamClosedError`` once the hub is closed."""
        if self._closed:
            raise StreamClosedError("the server is shutting down")
        async with self._lock:
            latest = await self._tracked()
            followed = frozenset(exchanges)
            subscription = Subscription(followed, {name: latest.get(name) for name in followed})
            self._subscriptions.add(subscription)  # same loop step as the copy: no run falls in between
        self._wake.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a stream that ended."""
        self._subscriptions.discard(subscription)

    def close(self) -> None:
        """End every open stream and refuse new ones (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.offer(_CLOSE)
        self._wake.set()
        log.info("stream_hub_closed", open_streams=len(self._subscriptions))

    async def stop(self) -> None:
        """Close and wait for the hub's loop to end."""
        self.close()
        if self._task is not None:
            await self._task

    async def read(self, read: Callable[[RunFeedRepository], T]) -> T:
        """Run ``read`` with a feed repository in the threadpool."""

        return await asyncio.to_thread(self._database.read, lambda conn: read(RunFeedRepository(conn)))

    async def _tracked(self) -> Mapping[str, PublishedRun | None]:
        if self._latest is None:
            self._latest = await self.read(lambda feed: {name: feed.latest(exchange=name) for name in self._exchanges})
        return self._latest

    async def _run(self) -> None:
        while not self._closed:
            timeout_s = self._poll_interval_s if self._subscriptions else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout_s)
            self._wake.clear()
            if self._closed:
                return
            try:
                await self._poll()
            except Exception as exc:  # a failing database must not end the hub; the next poll retries
                log.warning("stream_poll_failed", error_type=type(exc).__name__, error=str(exc))

    async def _poll(self) -> None:
        async with self._lock:
            if not self._subscriptions:
                self._latest = None  # stop tracking; the next subscriber re-reads the current runs
                return
            latest = dict(await self._tracked())
            fresh = await self.read(lambda feed: _new_runs(feed, latest))
            for run in fresh:
                latest[run.exchange] = run
                for subscription in list(self._subscriptions):
                    subscription.offer(run)
            self._latest = latest
        if fresh:
            log.debug("stream_runs_broadcast", runs=len(fresh), streams=len(self._subscriptions))


def _new_runs(feed: RunFeedRepository, latest: Mapping[str, PublishedRun | None]) -> list[PublishedRun]:
    """Every exchange's runs published after ``latest`` (at most ``FETCH_LIMIT`` each), oldest first."""
    fresh: list[PublishedRun] = []
    for exchange, run in latest.items():
        fresh += (
            feed.newest(exchange=exchange, limit=FETCH_LIMIT) if run is None else feed.after(run, limit=FETCH_LIMIT)
        )
    return sorted(fresh, key=lambda run: run.published_at)
