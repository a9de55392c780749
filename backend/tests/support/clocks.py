"""A clock a test moves by hand, for code that takes a monotonic ``clock_s`` seam (seconds)."""

from __future__ import annotations


class ManualClock:
    """Returns ``now_s`` until the test changes it."""

    def __init__(self, now_s: float = 1000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s
