"""Bounded connections for the API server: a header deadline per connection and quiet descriptor exhaustion.

Invariants:
- A connection must deliver a complete request head (request line and headers) within ``header_timeout_s`` of
  opening, and again within ``header_timeout_s`` of its first byte after a finished response; otherwise it is closed.
  A connection that sends nothing at all is closed the same way. Uvicorn's own keep-alive timeout still closes an
  idle connection between requests; bodies and responses are not affected (the app bounds bodies itself).
- When ``accept()`` fails for lack of descriptors (EMFILE/ENFILE), the event loop's error is logged as one
  ``accept_failed`` event per ``LOG_EVERY_S`` with the number of failures in between, never a traceback per accept;
  every other loop error goes to the default handler.
Times are monotonic seconds.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Callable
from typing import Any

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = structlog.get_logger(__name__)

LOG_EVERY_S = 10.0
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol with a deadline for each request head (``header_timeout_s``)."""

    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Open the connection and start the deadline for its first request head."""
        self._head_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        """Bytes of a new request start its deadline; a complete head (``on_headers_complete``) stops it."""
        if self._between_requests():
            self._arm()
        super().data_received(data)

    def on_headers_complete(self) -> None:
        """The head arrived in time."""
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self._head_deadline = None
        if self._between_requests() and not self.transport.is_closing():
            log.debug("connection_closed_slow_head", client=self.client, timeout_s=self.header_timeout_s)
            self.transport.close()


def protocol_with_deadline(header_timeout_s: float) -> type[HeaderDeadlineProtocol]:
    """A ``HeaderDeadlineProtocol`` subclass with ``header_timeout_s`` (uvicorn takes a protocol class)."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": header_timeout_s})


class AcceptErrorLog:
    """A loop exception handler that turns descriptor exhaustion into one rate-limited event."""

    def __init__(self, *, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self.failures = 0
        self.last_logged_s = float("-inf")

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Count (and now and then log) out-of-descriptor errors; pass anything else on."""
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and exc.errno in OUT_OF_DESCRIPTORS):
            loop.default_exception_handler(context)
            return
        self.failures += 1
        now_s = self.clock()
        if now_s - self.last_logged_s >= self.every_s:
            log.error("accept_failed", reason=exc.strerror, failures=self.failures, every_s=self.every_s)
            self.failures, self.last_logged_s = 0, now_s


def install_accept_error_log(loop: asyncio.AbstractEventLoop) -> AcceptErrorLog:
    """Make ``loop`` log descriptor exhaustion as rate-limited ``accept_failed`` events."""
    handler = AcceptErrorLog()
    loop.set_exception_handler(handler)
    return handler
