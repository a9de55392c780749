"""Quiet descriptor exhaustion for the API server: one rate-limited event, never a traceback per accept.

Invariants:
- When ``accept()`` fails for lack of descriptors (EMFILE/ENFILE), the event loop's error is logged as one
  ``accept_failed`` event per ``LOG_EVERY_S`` with the number of failures in between, never a traceback per accept;
  every other loop error goes to the default handler. uvloop (libuv) reports no such error: it sheds the connections
  it cannot take. ``watch_descriptors`` checks once per ``WATCH_EVERY_S`` whether every allowed descriptor is held
  and records that as a failure, so the event is logged on either loop.
Times are monotonic seconds.
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import time
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

LOG_EVERY_S = 10.0
WATCH_EVERY_S = 1.0  # how often watch_descriptors counts the held descriptors
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


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
        self.record(exc.strerror or os.strerror(exc.errno or errno.EMFILE))

    def record(self, reason: str) -> None:
        """Count one failure for lack of descriptors; log the count when the last event is ``every_s`` old."""
        self.failures += 1
        now_s = self.clock()
        if now_s - self.last_logged_s >= self.every_s:
            log.error("accept_failed", reason=reason, failures=self.failures, every_s=self.every_s)
            self.failures, self.last_logged_s = 0, now_s


def descriptors_exhausted(*, fd_dir: str = "/proc/self/fd", soft_limit: int | None = None) -> bool:
    """Whether this process holds every descriptor its soft ``RLIMIT_NOFILE`` allows (listing them needs one)."""
    try:
        held = len(os.listdir(fd_dir))
    except OSError as exc:
        return exc.errno in OUT_OF_DESCRIPTORS
    return held >= (soft_limit if soft_limit is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0])


async def watch_descriptors(
    handler: AcceptErrorLog, *, every_s: float = WATCH_EVERY_S, exhausted: Callable[[], bool] = descriptors_exhausted
) -> None:
    """Record descriptor exhaustion once per ``every_s`` until cancelled: the loops (uvloop's libuv) that shed
    connections on EMFILE without reporting it still get their ``accept_failed`` event."""
    while True:
        await asyncio.sleep(every_s)
        if exhausted():
            handler.record(os.strerror(errno.EMFILE))


def install_accept_error_log(loop: asyncio.AbstractEventLoop) -> AcceptErrorLog:
    """Make ``loop`` log descriptor exhaustion as rate-limited ``accept_failed`` events."""
    handler = AcceptErrorLog()
    loop.set_exception_handler(handler)
    return handler
