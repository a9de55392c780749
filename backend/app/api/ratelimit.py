"""Per-key request budgets: fixed one-minute windows counted in this process.

Each API process counts its own requests, so with N processes behind a balancer a key may get up to N times its
budget; the answer to an exhausted budget is 429 with ``Retry-After`` (seconds to the next window).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

WINDOW_S = 60.0


class RateLimiter:
    """Counts requests per key in the current minute window."""

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
                return max(1, math.ceil((window + 1) * WINDOW_S - now_s))
            self._windows[key_id] = (window, count + 1)
        return None
