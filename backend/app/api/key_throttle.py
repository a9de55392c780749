"""The failed-key throttle: a client that sent ``limit_per_min`` invalid keys in a wall-clock minute gets 429 (with
``Retry-After``, the seconds until that minute ends) instead of another key check, so keys cannot be guessed at
speed and guesses cannot keep the key store busy.

Invariants:
- A client is its address as the server sees it (the socket peer, or the ``X-Forwarded-For`` client when a trusted
  proxy sent it: ``DANTARO_FORWARDED_ALLOW_IPS``).
- Only keys that were checked and refused count (a request without a key does not); the count is shared by every
  API process through Redis when Redis is configured (``ratelimit.RedisRateLimiter``, namespace ``failedkeys``),
  else it is this process's own.
- A throttled client's requests with a key this process verified before still go through (``KeyVerifier.known``),
  so a valid client behind the same address as a guesser keeps working; any other key gets the 429 without a
  lookup.
"""

from __future__ import annotations

import structlog

from app.api.ratelimit import Limiter, RateLimiter

FAILED_KEYS_NAMESPACE = "failedkeys"
DEFAULT_FAILED_KEYS_PER_MIN = 20
log = structlog.get_logger(__name__)


class FailedKeyThrottle:
    """Counts refused keys per client address against ``limit_per_min``."""

    def __init__(self, counter: Limiter | None = None, *, limit_per_min: int = DEFAULT_FAILED_KEYS_PER_MIN) -> None:
        self.counter: Limiter = counter if counter is not None else RateLimiter()
        self.limit_per_min = limit_per_min

    def retry_after_s(self, client: str) -> int | None:
        """None while ``client`` may have keys checked, else the seconds until it may again."""
        return self.counter.peek(client, limit_per_min=self.limit_per_min)

    def record_failure(self, client: str) -> None:
        """Count one refused key from ``client``; logs ``failed_keys_throttled`` when that reaches the limit."""
        if self.counter.hit(client, limit_per_min=self.limit_per_min) is not None:
            return  # already throttled (a request that was let through by an out-of-date shared count)
        if self.retry_after_s(client) is not None:
            log.warning("failed_keys_throttled", client=client, limit_per_min=self.limit_per_min)


def client_address(client: tuple[str, int] | list[object] | None) -> str:
    """The address part of an ASGI scope's ``client`` (``unknown`` when the server gave none)."""
    return str(client[0]) if client else "unknown"
