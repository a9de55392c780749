"""A circuit breaker a test can read: the ``Breaker`` the Redis users share with the snapshot reader."""

from __future__ import annotations


class RecordingBreaker:
    """Redis is usable until the first trip; every trip's reason is kept."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def cache_usable(self) -> bool:
        """True until the first trip."""
        return not self.reasons

    def trip_cache(self, reason: str) -> None:
        """Record a failure."""
        self.reasons.append(reason)
