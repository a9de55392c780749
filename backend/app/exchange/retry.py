"""The retry policy for exchange calls: which errors are retried, how long to wait, how many times.

Invariants:
- Pure: ``delay_s`` depends only on its arguments (the random draw is passed in); ``call_with_retries`` takes the
  sleep function and random source as seams, so tests run instantly and deterministically.
- Retried: ``RateLimited`` (HTTP 429 and exchange rate-limit codes) and ``ExchangeUnavailable`` (5xx, timeouts,
  refused connections). Never retried: ``SymbolNotFound`` and any other ``ExchangeError``.
- Backoff is exponential with full jitter, ``base_delay_s * 2**(attempt-1) * U[0.5, 1.0]``, capped at
  ``max_delay_s``; a ``Retry-After`` hint is honoured as a lower bound (also capped at ``max_delay_s``).
- ``max_attempts`` counts the first call: at most ``max_attempts`` calls, then the last error is raised.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from app.exchange.errors import ExchangeError, ExchangeUnavailable, RateLimited

log = structlog.get_logger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed exchange call is repeated."""

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0


def delay_s(policy: RetryPolicy, error: ExchangeError, *, attempt: int, draw: float) -> float | None:
    """Seconds to wait before retrying after failed call number ``attempt`` (1-based); ``None``: do not retry.

    ``draw`` is a uniform random number in [0, 1) that sets the jitter.
    """
    if attempt >= policy.max_attempts or not isinstance(error, RateLimited | ExchangeUnavailable):
        return None
    backoff_s = policy.base_delay_s * (2 ** (attempt - 1)) * (0.5 + 0.5 * draw)
    if isinstance(error, RateLimited) and error.retry_after_s is not None:
        backoff_s = max(backoff_s, error.retry_after_s)
    return float(min(backoff_s, policy.max_delay_s))


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    sleep: Sleep = asyncio.sleep,
    rand: Random = random.random,
    what: str = "exchange_call",
) -> T:
    """``await call()``, retried per ``policy`` on transient ``ExchangeError``s; raises the last error."""
    attempt = 1
    while True:
        try:
            return await call()
        except ExchangeError as error:
            wait_s = delay_s(policy, error, attempt=attempt, draw=rand())
            if wait_s is None:
                raise
            log.info(
                "exchange_retry", what=what, attempt=attempt, wait_s=round(wait_s, 3), error_type=type(error).__name__
            )
            await sleep(wait_s)
            attempt += 1
