"""A Server-Sent Events reader for the stream tests: one response read on a thread, its events and comments queued
with the monotonic time they arrived (``at_s``). Parsing follows the SSE format: ``field: value`` lines, a blank
line ends an event, lines starting with ``:`` are comments."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx2

READ_TIMEOUT_S = 30.0


@dataclass
class SseEvent:
    """One event (``event`` set) or one comment (``comment`` set), and when it arrived (monotonic and wall clock)."""

    at_s: float
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    event: str | None = None
    data: str = ""
    id: str | None = None
    retry_ms: int | None = None
    comment: str | None = None

    def json(self) -> Any:
        """The event's data as JSON."""
        return json.loads(self.data)


def _parse(line: str, block: dict[str, str]) -> SseEvent | None:
    """Feed one line; returns an event or a comment when one is complete."""
    now_s = time.monotonic()
    if line.startswith(":"):
        return SseEvent(at_s=now_s, comment=line[1:].strip())
    if line:
        name, _, value = line.partition(":")
        block[name] = value[1:] if value.startswith(" ") else value
        return None
    if not block:
        return None
    retry = block.get("retry")
    event = SseEvent(
        at_s=now_s,
        event=block.get("event", "message"),
        data=block.get("data", ""),
        id=block.get("id"),
        retry_ms=int(retry) if retry else None,
    )
    block.clear()
    return event


class SseReader:
    """``GET url`` as an event stream on a daemon thread; ``next`` hands out what arrived, in order."""

    def __init__(self, url: str, *, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers
        self.status: int | None = None
        self.body = ""  # the body of a non-200 answer
        self.ended = threading.Event()  # the server ended the response
        self._items: queue.Queue[SseEvent] = queue.Queue()
        self._opened = threading.Event()
        self._stop = threading.Event()
        self._reply: httpx2.Response | None = None
        self._thread = threading.Thread(target=self._read, name="sse-reader", daemon=True)

    def start(self, *, timeout_s: float = 10.0) -> SseReader:
        """Send the request and wait for the status line."""
        self._thread.start()
        if not self._opened.wait(timeout_s):
            raise TimeoutError(f"no answer from {self.url} within {timeout_s} s")
        return self

    def next(self, *, timeout_s: float) -> SseEvent:
        """The next event or comment; ``queue.Empty`` after ``timeout_s``."""
        return self._items.get(timeout=timeout_s)

    def next_event(self, name: str, *, timeout_s: float) -> SseEvent:
        """The next event called ``name`` (comments and other events before it are dropped)."""
        deadline_s = time.monotonic() + timeout_s
        while True:
            item = self.next(timeout_s=max(0.0, deadline_s - time.monotonic()))
            if item.event == name:
                return item

    def close(self) -> None:
        """Stop reading and close the connection."""
        self._stop.set()
        reply = self._reply
        if reply is not None:
            with contextlib.suppress(Exception):  # closing under the reading thread's feet is the point
                reply.close()
        self._thread.join(READ_TIMEOUT_S + 5)

    def __enter__(self) -> SseReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> None:
        timeout = httpx2.Timeout(10.0, read=READ_TIMEOUT_S)
        try:
            with (
                httpx2.Client(timeout=timeout) as client,
                client.stream("GET", self.url, headers=self.headers) as reply,
            ):
                self.status = reply.status_code
                if reply.status_code != 200:
                    self.body = reply.read().decode()
                    return
                self._reply = reply
                self._opened.set()
                self._pump(reply)
        except (httpx2.HTTPError, OSError, RuntimeError):
            if not self._stop.is_set():
                raise
        finally:
            self._opened.set()
            self.ended.set()

    def _pump(self, reply: httpx2.Response) -> None:
        block: dict[str, str] = {}
        for line in reply.iter_lines():
            if self._stop.is_set():
                return
            item = _parse(line, block)
            if item is not None:
                self._items.put(item)
