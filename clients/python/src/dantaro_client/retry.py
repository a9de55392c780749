"""When the client asks again: 429 and 503 answers, as ``Retry-After`` says, within bounds.

Invariants: a call sends at most ``max_attempts`` requests and sleeps at most ``max_wait_s`` seconds in total; it
never waits less than the answer's ``Retry-After`` (seconds or an HTTP date). A wait that would cross
``max_wait_s`` is not started: the error is raised at once, its ``retry_after_s`` telling the caller when to come
back. Without ``Retry-After`` the waits are ``backoff_s``, then twice, four times that. Other errors, timeouts and
failed connections are never retried (a timeout may mean an overloaded server; the caller decides).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRIED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``max_attempts`` requests per call and ``max_wait_s`` seconds of waiting in total."""

    max_attempts: int = 3
    max_wait_s: float = 30.0
    backoff_s: float = 1.0
    statuses: frozenset[int] = field(default=RETRIED_STATUSES)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 (1 = never retry), got {self.max_attempts}")
        if self.max_wait_s < 0 or self.backoff_s < 0:
            raise ValueError("max_wait_s and backoff_s must be >= 0 seconds")

    def delay_s(self, *, status_code: int, retry_after_s: float | None, attempt: int, waited_s: float) -> float | None:
        """Seconds to sleep before request ``attempt + 1`` after an answer with ``status_code``, or None: give up."""
        if status_code not in self.statuses or attempt >= self.max_attempts:
            return None
        delay = retry_after_s if retry_after_s is not None else self.backoff_s * 2 ** (attempt - 1)
        return delay if waited_s + delay <= self.max_wait_s else None


NO_RETRY = RetryPolicy(max_attempts=1)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (>= 0) from delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
