"""Polling until a condition holds, for tests that watch real processes and servers (monotonic seconds)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str, poll_s: float = 0.1) -> float:
    """Poll ``condition`` every ``poll_s`` until it holds; returns the seconds it took, fails after ``timeout_s``."""
    started_s = time.monotonic()
    while not condition():
        if time.monotonic() - started_s > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)
    return time.monotonic() - started_s
