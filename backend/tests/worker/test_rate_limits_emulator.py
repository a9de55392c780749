"""Rate limits, bans and the exchange's budget hints, end to end: worker cycles through ccxt's real HTTP stack against
the loopback emulations of Upbit and Binance (``tests/support/emulator``), whose errors carry the exchanges' own JSON
bodies.

- A 25 % storm of 429s (``Retry-After``) and 5xx on a cycle of 40 symbols: every symbol is collected exactly, every
  request that got an error was asked again (no rate limit left un-retried), within the retry budget.
- A short IP ban (418, Retry-After for Binance, none for Upbit): the worker stops calling, waits it out (real time,
  one second) and the cycle succeeds; only the calls already on their way meet the ban.
- A ban longer than we wait: no call reaches the exchange until it ends (a hand-moved clock), then all is fetched.
- The exchange's limit enforced with 429s and reported in its headers (Upbit ``Remaining-Req``, 10 a second per
  group; Binance ``X-MBX-USED-WEIGHT-1M`` with another client of the IP having used most of the minute): the
  collector paces itself and never meets the limit.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from app.domain import RunStatus, timeframe_ms
from app.exchange import RetryPolicy
from tests.support.clocks import ManualClock
from tests.support.emulator import Emulator, Fault, synthetic_bases
from tests.support.emulator.limits import RateLimits, RateStorm
from tests.support.ingest import assert_exact, make_cycle
from tests.support.storage import StorageBackend

REAL = ["BTC", "ETH", "SOL"]
HOUR_MS = timeframe_ms("1h")
BUDGET_S = 300.0  # the default DANTARO_RETRY_BUDGET_S
TIMEOUT_MS = 10_000  # no request should time out here, even on a loaded machine (timeouts: test_ingest_emulator)


def start(kind: str, bases: list[str], aliases: dict[str, str] | None = None) -> Emulator:
    emulated = Emulator(kind, bases, aliases=aliases or {}).start()
    emulated.fixed_now_ms = emulated.rows("BTC", "1h")[-40][0] + HOUR_MS // 2  # mid-hour: one candle forming
    return emulated


@pytest.fixture(params=["upbit", "binance"])
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    emulated = start(request.param, REAL)
    yield emulated
    emulated.stop()


@pytest.fixture(params=["upbit", "binance"])
def forty(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """40 symbols: the three real series and 37 synthetic names re-using them."""
    aliases = synthetic_bases(37, real=REAL)
    emulated = start(request.param, [*REAL, *aliases], aliases)
    yield emulated
    emulated.stop()


class ClockedSleep:
    """A sleep seam moving a ``ManualClock`` to the end of each wait (concurrent waits end together)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        end_s = self.clock.now_s + seconds
        await asyncio.sleep(0)
        self.clock.now_s = max(self.clock.now_s, end_s)


async def test_a_25_percent_storm_with_json_error_bodies_still_collects_all_40_symbols(
    backend: StorageBackend, forty: Emulator
) -> None:
    slept: list[float] = []
    storm = RateStorm(share=0.25, retry_after_s=1)
    forty.storm = storm
    cycle = make_cycle(backend, forty, slept, budget_s=BUDGET_S, timeout_ms=TIMEOUT_MS)
    try:
        outcome = await cycle.run_once()
    finally:
        await cycle.source.close()
    assert outcome.status is RunStatus.SUCCEEDED, outcome.errors
    assert outcome.symbols_ok == 40 and outcome.errors == {}
    assert_exact(backend, forty, forty.kind)
    assert 0.2 <= storm.failed / storm.served <= 0.3, (storm.failed, storm.served)
    assert storm.statuses[429] > 0 and sum(n for status, n in storm.statuses.items() if status >= 500) > 0
    # every request that met a 429 or 5xx was asked again: those whose last answer was an error had all 4 attempts
    # (a universe probe may: its symbol is kept and collected)
    assert all(storm.seen[key] >= 4 for key in storm.failing), {k: storm.seen[k] for k in storm.failing}
    assert 1.0 in slept and sum(slept) <= BUDGET_S  # Retry-After honoured, within the cycle's retry budget


async def test_a_short_ban_is_waited_out_without_calling_and_the_worker_recovers(
    backend: StorageBackend, emulator: Emulator
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # real time: the emulator's ban runs on the wall clock
        waits.append(seconds)
        await asyncio.sleep(seconds)

    policy = RetryPolicy(max_attempts=4, base_delay_s=0.5, max_delay_s=1.0)  # a ban without Retry-After: 1 s
    cycle = make_cycle(backend, emulator, [], policy=policy, sleep=sleep, timeout_ms=TIMEOUT_MS)
    try:
        calm = await cycle.run_once()
        emulator.fixed_now_ms = emulator.now_ms + 2 * HOUR_MS
        candle_path = "/v1/candles" if emulator.kind == "upbit" else "/api/v3/klines"
        stated = 1 if emulator.kind == "binance" else None  # Upbit documents no Retry-After on its 418
        emulator.faults.append(Fault(candle_path, status=418, retry_after_s=stated, ban_s=1.0))
        with capture_logs() as logs:
            banned = await cycle.run_once()
    finally:
        await cycle.source.close()
    assert calm.status is RunStatus.SUCCEEDED
    assert banned.status is RunStatus.SUCCEEDED and banned.errors == {}, banned.errors
    assert_exact(backend, emulator, emulator.kind)
    assert 1 <= emulator.ban_replies <= len(REAL)  # only calls already on their way met the ban: none hammered it
    loud = [e for e in logs if e["event"] == "exchange_banned"]
    assert loud and {e["log_level"] for e in loud} == {"error"}
    assert (loud[0]["ban_s"], loud[0]["stated"], loud[0]["waits_it_out"]) == (1.0, stated is not None, True)
    assert any(e["event"] == "exchange_ban_wait" for e in logs) and waits


async def test_a_ban_longer_than_we_wait_stops_all_calls_until_it_ends(
    backend: StorageBackend, emulator: Emulator
) -> None:
    clock = ManualClock(1_000_000.0)
    emulator.clock_s = clock
    sleep = ClockedSleep(clock)
    cycle = make_cycle(backend, emulator, [], sleep=sleep, wall_clock_s=clock, timeout_ms=TIMEOUT_MS)
    candle_path = "/v1/candles" if emulator.kind == "upbit" else "/api/v3/klines"
    try:
        assert (await cycle.run_once()).status is RunStatus.SUCCEEDED
        emulator.fixed_now_ms = emulator.now_ms + HOUR_MS
        emulator.faults.append(Fault(candle_path, status=418, retry_after_s=3600, ban_s=3600.0))
        before = emulator.calls()
        first = await cycle.run_once()
        during = emulator.calls() - before
        clock.now_s += 1800  # still banned: the next cycle calls nothing
        before = emulator.calls()
        second = await cycle.run_once()
        refused = emulator.calls() - before
        clock.now_s += 1801  # the ban is over
        after = await cycle.run_once()
    finally:
        await cycle.source.close()
    for run in (first, second):
        assert run.status is RunStatus.FAILED and run.error is not None
        assert all(re.search(r"\bBanned: ", reason) for reason in run.errors.values()), run.errors
    assert during <= 1 + len(REAL) and refused == 0  # tickers + the candle calls already on their way; then none
    assert sleep.waits == []  # nothing waited: a three-day ban is not waited out inside a cycle
    assert after.status is RunStatus.SUCCEEDED and after.errors == {}
    assert_exact(backend, emulator, emulator.kind)


async def test_the_collector_paces_itself_by_the_budget_the_exchange_reports(
    backend: StorageBackend, forty: Emulator
) -> None:
    clock = ManualClock(1_700_000_000.0)  # 20 s into a clock minute
    limits = RateLimits(forty.kind, clock_s=clock, used_at_start=5800)  # Binance: another client used 5800 of 6000
    forty.limits, forty.clock_s = limits, clock
    sleep = ClockedSleep(clock)
    cycle = make_cycle(backend, forty, [], sleep=sleep, wall_clock_s=clock, timeout_ms=TIMEOUT_MS)
    try:
        with capture_logs() as logs:
            outcome = await cycle.run_once()
    finally:
        await cycle.source.close()
    assert outcome.status is RunStatus.SUCCEEDED and outcome.errors == {}, outcome.errors
    assert_exact(backend, forty, forty.kind)
    assert limits.limited == 0  # never over the exchange's limit: no 429 at all
    paced = [e for e in logs if e["event"] == "exchange_paced"]
    assert paced and not [e for e in logs if e["event"] == "exchange_retry" and e["error_type"] == "RateLimited"]
    if forty.kind == "upbit":  # 10 a second per group: the candle calls take several seconds of the clock
        candle_calls = forty.calls("/v1/candles")
        assert clock.now_s - 1_700_000_000.0 >= candle_calls // 10 - 1
        assert {e["budget"] for e in paced} >= {"fetch_ohlcv"}
    else:  # held once, until the next minute (+1 s for clock skew), then the fresh minute is plenty
        assert [e["wait_s"] for e in paced] == [pytest.approx(41.0, abs=1.0)] and paced[0]["budget"] == "all"
