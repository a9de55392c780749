"""When a failed delivery is tried again: exponential backoff, capped, within a retry window. Pure.

Invariant: after the n-th failed attempt the next one is due ``min(base_s × 2^(n-1), max_delay_s)`` later; a
delivery whose next attempt would start more than ``window_s`` after it was created is ``failed`` instead. With the
defaults (10 s, 1 h, 24 h): 10 s, 20 s, 40 s, … 2560 s (about 43 min), then hourly: 32 attempts, the
last 23.4 h after the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.config import Settings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The backoff of failed deliveries (seconds)."""

    base_s: float
    max_delay_s: float
    window_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """``DANTARO_WEBHOOK_RETRY_BASE_S``, ``_MAX_DELAY_S`` and ``_WINDOW_S``."""
        return cls(
            base_s=settings.webhook_retry_base_s,
            max_delay_s=settings.webhook_retry_max_delay_s,
            window_s=settings.webhook_retry_window_s,
        )

    def delay_s(self, failed_attempts: int) -> float:
        """Seconds between the ``failed_attempts``-th failure and the next attempt."""
        exponent = min(max(failed_attempts - 1, 0), 62)
        return float(min(self.base_s * 2**exponent, self.max_delay_s))

    def next_attempt_at(self, *, failed_attempts: int, created_at: datetime, now: datetime) -> datetime | None:
        """When to try again after a failure at ``now``; None when that falls outside the retry window."""
        due = now + timedelta(seconds=self.delay_s(failed_attempts))
        return None if due > created_at + timedelta(seconds=self.window_s) else due
