"""The retry policy for exchange calls: which errors are retried, how long to wait, how many times.

Invariants:
- Pure: ``delay_s`` depends only on its arguments (the random draw is passed in); ``call_with_retries`` takes the
  sleep function and random source as seams, so tests run instantly and deterministically.
- Retried: ``RateLimited`` (HTTP 429 and exchange rate-limit codes) and ``ExchangeUnavailable`` (5xx, timeouts,
  refused connections). Never retried: ``SymbolNotFound`` and any other ``ExchangeError``.
- ``Banned`` (418, ban codes) is retried at once (delay 0, nothing taken from the budget): the source's call gate
  (``app.exchange.pacing``) holds the next attempt, and every other call, until the ban ends. A ban longer than
  ``ban_max_wait_s`` is not retried.
- Backoff is exponential with full jitter, ``base_delay_s * 2**(attempt-1) * U[0.5, 1.0]``, capped at
  ``max_delay_s``; a ``Retry-After`` hint is honoured as a lower bound (also capped at ``max_delay_s``).
- ``max_attempts`` counts the first call: at most ``max_attempts`` calls, then the last error is raised.
- The cycle's budget (``RetryBudget``, ``cycle_budget_s``): the retry waits of all calls of one cycle add up to at
  most ``cycle_budget_s``, and one call's to at most ``CALL_SHARE`` of it, so the budget is spread over the cycle's
  calls (one stuck symbol cannot spend what the others need). A wait the budget cannot grant is not taken: the call
  raises ``RetryBudgetSpent`` (naming the last error) at once, so a storm cycle ends in bounded time with what it
  could fetch. ``None``: no budget (the backfill).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from app.exchange.errors import Banned, ExchangeError, ExchangeUnavailable, RateLimited, RetryBudgetSpent

log = structlog.get_logger(__name__)

T = TypeVar("T")
CALL_SHARE = 0.25  # the most of a cycle's retry budget one call's retries may wait
Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed exchange call is repeated."""

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0
    cycle_budget_s: float | None = None  # summed retry waits of one cycle's calls; None: unlimited
    ban_max_wait_s: float = 300.0  # the longest IP ban waited out; a longer one fails the calls until it ends


class RetryBudget:
    """The retry waiting one cycle may still spend, summed over its calls (see the module invariants)."""

    def __init__(self, total_s: float | None) -> None:
        self.total_s = total_s
        self.spent_s = 0.0

    def grant(self, wait_s: float, *, call_spent_s: float) -> bool:
        """Take ``wait_s`` from the budget for a call that already waited ``call_spent_s``; False: not granted."""
        if self.total_s is None:
            return True
        if self.spent_s + wait_s > self.total_s or call_spent_s + wait_s > self.total_s * CALL_SHARE:
            return False
        self.spent_s += wait_s
        return True


def delay_s(policy: RetryPolicy, error: ExchangeError, *, attempt: int, draw: float) -> float | None:
    """Seconds to wait before retrying after failed call number ``attempt`` (1-based); ``None``: do not retry.

    ``draw`` is a uniform random number in [0, 1) that sets the jitter.
    """
    if attempt >= policy.max_attempts or not isinstance(error, RateLimited | ExchangeUnavailable):
        return None
    if isinstance(error, Banned):
        too_long = error.retry_after_s is not None and error.retry_after_s > policy.ban_max_wait_s
        return None if too_long else 0.0
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
    budget: RetryBudget | None = None,
) -> T:
    """``await call()``, retried per ``policy`` on transient ``ExchangeError``s while ``budget`` grants the waits;
    raises the last error (``RetryBudgetSpent`` from it when the budget refused a wait)."""
    attempt, waited_s = 1, 0.0
    while True:
        try:
            return await call()
        except ExchangeError as error:
            wait_s = delay_s(policy, error, attempt=attempt, draw=rand())
            if wait_s is None:
                raise
            if budget is not None and not budget.grant(wait_s, call_spent_s=waited_s):
                log.warning("exchange_retry_budget_spent", what=what, attempt=attempt, budget_s=budget.total_s)
                raise RetryBudgetSpent(
                    f"{type(error).__name__}: {error} (not retried: the cycle's retry budget of "
                    f"{budget.total_s:g} s is spent)"
                ) from error
            waited_s += wait_s
            log.info(
                "exchange_retry", what=what, attempt=attempt, wait_s=round(wait_s, 3), error_type=type(error).__name__
            )
            await sleep(wait_s)
            attempt += 1
