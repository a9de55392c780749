"""The call gate (``app.exchange.pacing``) on a hand-moved clock: what each budget header says, how the reported
budget limits the calls in flight, and how a ban holds every call (or refuses it when longer than we wait)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from structlog.testing import capture_logs

from app.exchange import Banned
from app.exchange.pacing import ALIGNED_MARGIN_S, CallGate, read_budget
from app.exchange.quirks import BUDGET_HEADERS, BudgetHeader
from tests.support.clocks import ManualClock

UPBIT, BINANCE = BUDGET_HEADERS["upbit"], BUDGET_HEADERS["binance"]


class Waits:
    """A sleep seam that moves the clock to the end of each wait (concurrent waits end together) and records it."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        end_s = self.clock.now_s + seconds
        await asyncio.sleep(0)
        self.clock.now_s = max(self.clock.now_s, end_s)


def gate(budget: BudgetHeader | None, clock: ManualClock, waits: Waits, *, max_ban_wait_s: float = 300.0) -> CallGate:
    return CallGate("x", budget=budget, max_ban_wait_s=max_ban_wait_s, default_ban_s=60.0, clock_s=clock, sleep=waits)


@pytest.mark.parametrize(
    ("spec", "headers", "left"),
    [
        (UPBIT, {"Remaining-Req": "group=candles; min=1800; sec=9"}, 9.0),
        (UPBIT, {"remaining-req": "group=default;min=1799;sec=0"}, 0.0),
        (UPBIT, {"Remaining-Req": "group=candles; min=1800"}, None),
        (UPBIT, {"Remaining-Req": "group=candles; sec=many"}, None),
        (UPBIT, {}, None),
        (BINANCE, {"X-MBX-USED-WEIGHT-1M": "1234"}, 6000.0 - 1234),
        (BINANCE, {"x-mbx-used-weight-1m": "6000"}, 0.0),
        (BINANCE, {"X-MBX-USED-WEIGHT-1M": "nan"}, None),
        (BINANCE, None, None),
    ],
)
def test_budget_headers_are_read(spec: BudgetHeader, headers: Mapping[str, str] | None, left: float | None) -> None:
    assert read_budget(spec, headers) == left


async def test_a_spent_upbit_group_waits_for_the_next_second_and_others_do_not() -> None:
    clock = ManualClock(1000.0)
    waits = Waits(clock)
    calls = gate(UPBIT, clock, waits)
    await calls.enter("fetch_ohlcv")
    calls.observe("fetch_ohlcv", {"Remaining-Req": "group=candles; min=1800; sec=2"})
    calls.leave("fetch_ohlcv")
    for _ in range(2):  # the two left in this second go at once
        await calls.enter("fetch_ohlcv")
        calls.leave("fetch_ohlcv")
    await calls.enter("fetch_tickers")  # another group: its own budget
    calls.leave("fetch_tickers")
    assert waits.waits == []
    with capture_logs() as logs:
        await calls.enter("fetch_ohlcv")  # spent: waits for the second to end
    assert waits.waits == [1.0] and clock.now_s == 1001.0
    assert [(e["event"], e["budget"], e["left"]) for e in logs] == [("exchange_paced", "fetch_ohlcv", 0.0)]


async def test_calls_in_flight_count_against_the_reported_budget() -> None:
    clock = ManualClock(1000.0)
    waits = Waits(clock)
    calls = gate(UPBIT, clock, waits)
    for _ in range(5):
        await calls.enter("fetch_ohlcv")
    calls.observe("fetch_ohlcv", {"Remaining-Req": "group=candles; sec=4"})  # four others may not be counted yet
    calls.observe("fetch_ohlcv", {"Remaining-Req": "group=candles; sec=9"})  # a stale report never raises it
    for _ in range(5):
        calls.leave("fetch_ohlcv")
    await calls.enter("fetch_ohlcv")
    assert waits.waits == [1.0]


async def test_concurrent_callers_start_no_more_than_the_budget_before_the_window_ends() -> None:
    clock = ManualClock(1000.0)
    waits = Waits(clock)
    calls = gate(UPBIT, clock, waits)
    await calls.enter("fetch_ohlcv")
    calls.observe("fetch_ohlcv", {"Remaining-Req": "group=candles; sec=3"})
    calls.leave("fetch_ohlcv")
    started: list[float] = []

    async def one() -> None:
        await calls.enter("fetch_ohlcv")
        started.append(clock.now_s)
        await asyncio.sleep(0)
        calls.leave("fetch_ohlcv")

    await asyncio.gather(*(one() for _ in range(8)))
    assert started.count(1000.0) == 3 and started.count(1001.0) == 5  # the rest in the next second


async def test_binance_holds_calls_until_the_next_clock_minute_near_its_weight_limit() -> None:
    clock = ManualClock(1_699_999_980.0 + 40.5)  # 40.5 s into a clock minute
    waits = Waits(clock)
    calls = gate(BINANCE, clock, waits)
    await calls.enter("fetch_ohlcv")
    calls.observe("fetch_ohlcv", {"X-MBX-USED-WEIGHT-1M": "5000"})  # 1000 left: above cost 2 + reserve 600
    calls.leave("fetch_ohlcv")
    await calls.enter("load_markets")  # one budget for every call
    calls.leave("load_markets")
    assert waits.waits == []
    calls.observe("fetch_tickers", {"X-MBX-USED-WEIGHT-1M": "5500"})
    await calls.enter("fetch_ohlcv")
    assert waits.waits == [pytest.approx(19.5 + ALIGNED_MARGIN_S)]


async def test_without_a_budget_header_nothing_is_paced() -> None:
    clock = ManualClock()
    waits = Waits(clock)
    calls = gate(None, clock, waits)
    calls.observe("fetch_ohlcv", {"Remaining-Req": "group=candles; sec=0"})
    for _ in range(20):
        await calls.enter("fetch_ohlcv")
    assert waits.waits == []


async def test_a_ban_holds_every_call_until_it_ends_and_is_logged_loudly_once() -> None:
    clock = ManualClock(1000.0)
    waits = Waits(clock)
    calls = gate(UPBIT, clock, waits)
    with capture_logs() as logs:
        calls.ban(Banned("binance HTTP 418", retry_after_s=120.0))
        calls.ban(Banned("binance HTTP 418", retry_after_s=60.0))  # a shorter one never shortens it
        await asyncio.gather(calls.enter("fetch_ohlcv"), calls.enter("fetch_tickers"))
    assert waits.waits == [120.0, 120.0] and clock.now_s == 1120.0 and calls.banned_for_s == 0.0
    banned = [e for e in logs if e["event"] == "exchange_banned"]
    assert [(e["log_level"], e["ban_s"], e["waits_it_out"]) for e in banned] == [("error", 120.0, True)]
    assert [e["event"] for e in logs].count("exchange_ban_wait") == 2


async def test_a_ban_without_a_stated_end_lasts_the_default() -> None:
    clock = ManualClock(1000.0)
    waits = Waits(clock)
    calls = gate(None, clock, waits)
    calls.ban(Banned("upbit HTTP 418"))
    assert calls.banned_for_s == 60.0
    await calls.enter("load_markets")
    assert waits.waits == [60.0]


async def test_a_ban_longer_than_we_wait_refuses_calls_without_waiting() -> None:
    clock = ManualClock(1000.0)
    waits = Waits(clock)
    calls = gate(None, clock, waits, max_ban_wait_s=300.0)
    with capture_logs() as logs:
        calls.ban(Banned("binance HTTP 418", retry_after_s=3 * 86400.0))
    assert logs[0]["waits_it_out"] is False
    with pytest.raises(Banned, match="longer than the 300 s we wait: not calling it until then") as refused:
        await calls.enter("fetch_ohlcv")
    assert refused.value.retry_after_s == 3 * 86400.0 and waits.waits == []
    clock.now_s += 3 * 86400.0  # the ban is over
    await calls.enter("fetch_ohlcv")
    assert waits.waits == []


async def test_a_wait_ends_when_its_sleep_returns_even_if_the_clock_did_not_move() -> None:
    clock = ManualClock(1000.0)
    slept: list[float] = []

    async def frozen(seconds: float) -> None:
        slept.append(seconds)

    calls = CallGate("x", budget=UPBIT, max_ban_wait_s=300.0, default_ban_s=60.0, clock_s=clock, sleep=frozen)
    calls.ban(Banned("418", retry_after_s=5.0))
    await calls.enter("fetch_ohlcv")
    calls.observe("fetch_ohlcv", {"Remaining-Req": "group=candles; sec=0"})
    calls.leave("fetch_ohlcv")
    await calls.enter("fetch_ohlcv")
    assert slept == [5.0, 1.0]
