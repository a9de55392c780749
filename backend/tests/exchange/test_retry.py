"""The retry policy as a table, ``call_with_retries`` with the sleep and random seams (no real waiting), and the
cycle's retry budget."""

from __future__ import annotations

import pytest

from app.exchange import Banned, ExchangeError, ExchangeUnavailable, RateLimited, RetryBudgetSpent, SymbolNotFound
from app.exchange.retry import CALL_SHARE, RetryBudget, RetryPolicy, call_with_retries, delay_s

POLICY = RetryPolicy(max_attempts=4, base_delay_s=1.0, max_delay_s=10.0, ban_max_wait_s=300.0)


@pytest.mark.parametrize(
    ("error", "attempt", "draw", "expected"),
    [
        (ExchangeUnavailable("503"), 1, 0.0, 0.5),  # base × 2**0 × jitter 0.5
        (ExchangeUnavailable("timeout"), 1, 1.0, 1.0),  # full draw: no reduction
        (ExchangeUnavailable("503"), 2, 0.0, 1.0),
        (ExchangeUnavailable("503"), 3, 0.5, 3.0),  # 4 × 0.75
        (ExchangeUnavailable("503"), 4, 0.0, None),  # attempts exhausted
        (RateLimited("429"), 1, 0.0, 0.5),  # no hint: backoff
        (RateLimited("429", retry_after_s=7.0), 1, 0.0, 7.0),  # Retry-After honoured
        (RateLimited("429", retry_after_s=0.1), 3, 1.0, 4.0),  # the backoff when longer than the hint
        (RateLimited("429", retry_after_s=120.0), 1, 0.0, 10.0),  # capped
        (Banned("418", retry_after_s=120.0), 1, 0.0, 0.0),  # at once: the call gate waits the ban out
        (Banned("418"), 2, 1.0, 0.0),  # no stated end: the gate's default
        (Banned("418", retry_after_s=301.0), 1, 0.0, None),  # longer than we wait
        (Banned("418", retry_after_s=1.0), 4, 0.0, None),  # attempts exhausted
        (SymbolNotFound("BTC/XYZ"), 1, 0.0, None),  # permanent
        (ExchangeError("bad request"), 1, 0.0, None),
    ],
)
def test_delay_table(error: ExchangeError, attempt: int, draw: float, expected: float | None) -> None:
    assert delay_s(POLICY, error, attempt=attempt, draw=draw) == expected


class Flaky:
    def __init__(self, errors: list[ExchangeError]) -> None:
        self.errors = errors
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_retries_transient_errors_then_succeeds() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    call = Flaky([RateLimited("429", retry_after_s=3.0), ExchangeUnavailable("502")])
    assert await call_with_retries(call, policy=POLICY, sleep=sleep, rand=lambda: 0.0) == "ok"
    assert call.calls == 3 and slept == [3.0, 1.0]


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    async def sleep(seconds: float) -> None:
        return None

    call = Flaky([ExchangeUnavailable(str(n)) for n in range(10)])
    with pytest.raises(ExchangeUnavailable, match=r"^3$"):
        await call_with_retries(call, policy=POLICY, sleep=sleep, rand=lambda: 0.5)
    assert call.calls == 4


async def test_permanent_errors_are_not_retried() -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError("must not sleep")

    call = Flaky([SymbolNotFound("nope")])
    with pytest.raises(SymbolNotFound):
        await call_with_retries(call, policy=POLICY, sleep=sleep)
    assert call.calls == 1


async def test_a_cycle_budget_is_shared_by_its_calls_and_spread_over_them() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    budget = RetryBudget(20.0)  # one call may wait at most 5 s of it (CALL_SHARE)
    assert budget.total_s is not None and budget.total_s * CALL_SHARE == 5.0
    stuck = Flaky([RateLimited("429", retry_after_s=3.0) for _ in range(10)])
    with pytest.raises(RetryBudgetSpent, match=r"^RateLimited: 429 \(not retried: the cycle's retry budget of 20 s"):
        await call_with_retries(stuck, policy=POLICY, sleep=sleep, rand=lambda: 0.0, budget=budget)
    assert stuck.calls == 2 and slept == [3.0]  # a second 3 s wait would pass the call's share
    for _ in range(5):  # others still get their retries from what is left: 17 s
        flaky = Flaky([RateLimited("429", retry_after_s=3.0)])
        assert await call_with_retries(flaky, policy=POLICY, sleep=sleep, rand=lambda: 0.0, budget=budget) == "ok"
    assert budget.spent_s == 18.0
    late = Flaky([RateLimited("429", retry_after_s=3.0)])
    with pytest.raises(RetryBudgetSpent):  # 2 s left: the budget is spent
        await call_with_retries(late, policy=POLICY, sleep=sleep, rand=lambda: 0.0, budget=budget)
    assert sum(slept) == budget.spent_s <= 20.0


async def test_without_a_budget_every_attempt_is_made() -> None:
    async def sleep(seconds: float) -> None:
        return None

    call = Flaky([RateLimited("429", retry_after_s=60.0) for _ in range(3)])
    assert await call_with_retries(call, policy=POLICY, sleep=sleep, budget=RetryBudget(None)) == "ok"
    assert call.calls == 4
