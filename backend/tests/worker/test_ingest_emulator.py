"""The worker ingests through ccxt's real HTTP stack from loopback emulations of Upbit and Binance.

Checks, against the emulator's source data exactly: the first collection backfills the lookback, and of the
analysis timeframe the refit's history (Upbit pages of 200, newest first), later cycles fetch only what closed since
(one call per symbol and timeframe), the forming candle is never stored, gaps stay gaps (logged as ``candle_gap`` and
reported from storage), and 429 with Retry-After, 5xx, a slow response and an unreachable host neither lose nor
invent a candle; a 429/5xx storm cycle publishes what it could fetch (``partial``, within the cycle's retry budget,
tickers from the stored candles) and the next calm cycle fills the gaps. See ``tests/support/emulator``."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from app.domain import RunStatus, TickersSource, timeframe_ms
from app.storage.gaps import Gap
from app.storage.reader import SnapshotReader
from app.storage.repositories import CandleRepository
from app.worker.main import open_worker
from tests.support.emulator import Emulator, Fault, Storm
from tests.support.ingest import LOOKBACK, assert_exact, make_cycle, settings_for, stored
from tests.support.storage import StorageBackend

BASES = ["BTC", "ETH", "SOL"]
HOUR_MS = timeframe_ms("1h")


@pytest.fixture(params=["upbit", "binance"])
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    emulated = Emulator(request.param, BASES).start()
    emulated.fixed_now_ms = emulated.rows("BTC", "1h")[-40][0] + HOUR_MS // 2  # mid-hour: one candle forming
    yield emulated
    emulated.stop()


async def test_cycles_ingest_exactly_through_faults_and_gaps(backend: StorageBackend, emulator: Emulator) -> None:
    slept: list[float] = []
    cycle = make_cycle(backend, emulator, slept)
    now_ms = emulator.now_ms
    gap_open_ms = now_ms - HOUR_MS // 2 + 2 * HOUR_MS  # closes during the next cycles; the exchange skips it
    emulator.gaps.add(("ETH", "1h", gap_open_ms))
    try:
        first = await cycle.run_once()
        assert first.status is RunStatus.SUCCEEDED and first.symbols_ok == len(BASES)
        assert_exact(backend, emulator, emulator.kind)
        assert len(stored(backend, emulator.kind, emulator.symbol("BTC"), "1h")) == cycle.options.history_candles == 248
        assert len(stored(backend, emulator.kind, emulator.symbol("BTC"), "1d")) == LOOKBACK
        emulator.fixed_now_ms = now_ms + 4 * HOUR_MS
        candle_path = "/v1/candles" if emulator.kind == "upbit" else "/api/v3/klines"
        emulator.faults += [
            Fault(candle_path, status=429, retry_after_s=2),
            Fault(candle_path, status=500),
            Fault(candle_path, delay_s=1.6),  # beyond the 1 s timeout
        ]
        before = emulator.calls()
        with capture_logs() as logs:
            second = await cycle.run_once()
        calls = emulator.calls() - before
    finally:
        await cycle.source.close()
    assert second.status is RunStatus.SUCCEEDED, second.errors
    assert not emulator.faults and 2.0 in slept and len(slept) >= 3  # more only if the machine is very slow
    assert calls == 1 + len(BASES) + len(slept)  # tickers + one 1h call per symbol (no new day) + one per retry
    assert_exact(backend, emulator, emulator.kind)
    gap_events = [e for e in logs if e["event"] == "candle_gap"]
    assert [(e["exchange"], e["symbol"], e["timeframe"], e["first_missing_ms"], e["missing"]) for e in gap_events] == [
        (emulator.kind, emulator.symbol("ETH"), "1h", gap_open_ms, 1)
    ]
    with backend.session_factory() as session:
        repository = CandleRepository(session)
        gaps = {b: repository.gaps(exchange=emulator.kind, symbol=emulator.symbol(b), timeframe="1h") for b in BASES}
    assert gaps == {base: [Gap(gap_open_ms, 1)] if base == "ETH" else [] for base in BASES}


async def test_unreachable_exchange_keeps_the_last_good_snapshot(backend: StorageBackend, emulator: Emulator) -> None:
    cycle = make_cycle(backend, emulator, [])
    try:
        good = await cycle.run_once()
    finally:
        await cycle.source.close()
    emulator.fixed_now_ms = emulator.now_ms + HOUR_MS
    slept: list[float] = []
    broken = make_cycle(backend, emulator, slept, unreachable=True)
    try:
        bad = await broken.run_once()
    finally:
        await broken.source.close()
    assert good.status is RunStatus.SUCCEEDED and bad.status is RunStatus.FAILED
    assert bad.error is not None and "ExchangeUnavailable" in bad.error
    assert len(slept) == 3  # bounded: four attempts, then the run gives up (a closed port fails fast)
    served = SnapshotReader(database=backend.database, cache=None).get(emulator.kind, use_cache=False)
    assert served is not None and served[0].run_id == good.run_id
    recovered = make_cycle(backend, emulator, [])
    try:
        assert (await recovered.run_once()).status is RunStatus.SUCCEEDED
    finally:
        await recovered.source.close()
    assert_exact(backend, emulator, emulator.kind)  # the hour missed during the outage is fetched afterwards


async def test_worker_runs_upbit_and_binance_side_by_side(backend: StorageBackend) -> None:
    upbit, binance = Emulator.live("upbit", BASES).start(), Emulator.live("binance", BASES).start()
    settings = settings_for(backend, {"upbit": upbit, "binance": binance})
    try:
        async with open_worker(settings) as worker:
            outcomes = await worker.run_all_once()
    finally:
        upbit.stop()
        binance.stop()
    assert [(o.exchange, o.status) for o in outcomes] == [
        ("upbit", RunStatus.SUCCEEDED),
        ("binance", RunStatus.SUCCEEDED),
    ]
    reader = SnapshotReader(database=backend.database, cache=None)
    for exchange, emulated in (("upbit", upbit), ("binance", binance)):
        served = reader.get(exchange, use_cache=False)
        assert served is not None and {r.symbol for r in served[0].recommendations} <= {
            emulated.symbol(b) for b in BASES
        }
        have = stored(backend, exchange, emulated.symbol("BTC"), "1h")
        assert have[-1].open_time_ms + HOUR_MS <= emulated.now_ms < have[-1].open_time_ms + 3 * HOUR_MS
        assert have == emulated.closed("BTC", "1h", since_ms=have[0].open_time_ms)[: len(have)]


STORM_BUDGET_S = 20.0
STORM_REASON = re.compile(r"^(1h|1d): (RateLimited|ExchangeUnavailable|RetryBudgetSpent): ")
REASON_SEPARATOR = re.compile(r"; (?=(?:1h|1d): )")  # exchanges' own messages hold "; " too


async def test_a_storm_cycle_is_partial_and_the_next_calm_cycle_fills_the_gaps(
    backend: StorageBackend, emulator: Emulator
) -> None:
    slept: list[float] = []
    cycle = make_cycle(backend, emulator, slept, budget_s=STORM_BUDGET_S)
    eth = emulator.symbol("ETH")
    try:
        calm = await cycle.run_once()
        emulator.fixed_now_ms = emulator.now_ms + 2 * HOUR_MS
        # every request fails once (429 with Retry-After or 500); ETH's candles and the tickers call keep failing
        emulator.storm = Storm(down=("ETH", "ticker"))
        slept.clear()
        with capture_logs() as logs:
            storm = await cycle.run_once()
        storm_waits_s = sum(slept)
        emulator.storm = None
        emulator.fixed_now_ms = emulator.now_ms + HOUR_MS
        after = await cycle.run_once()
    finally:
        await cycle.source.close()
    assert calm.status is RunStatus.SUCCEEDED
    assert storm.status is RunStatus.PARTIAL and list(storm.errors) == [eth], storm.error
    assert all(STORM_REASON.match(part) for part in REASON_SEPARATOR.split(storm.errors[eth])), storm.errors
    assert storm.symbols_ok == len(BASES) - 1 and storm.tickers_source is TickersSource.CANDLES
    assert 0 < storm_waits_s <= STORM_BUDGET_S  # the others were retried; bounded by the cycle's retry budget
    assert {e["symbol"] for e in logs if e["event"] == "collect_failed"} == {eth}
    assert [e["fallback"] for e in logs if e["event"] == "tickers_fallback"] == ["candles"]
    served = SnapshotReader(database=backend.database, cache=None).get(emulator.kind, use_cache=False)
    assert served is not None and served[0].run_id == after.run_id
    assert after.status is RunStatus.SUCCEEDED and after.errors == {} and after.tickers_source is TickersSource.EXCHANGE
    assert_exact(backend, emulator, emulator.kind)  # nothing lost, nothing invented
    with backend.session_factory() as session:
        repository = CandleRepository(session)
        for base in BASES:
            for timeframe in ("1h", "1d"):
                symbol = emulator.symbol(base)
                assert repository.gaps(exchange=emulator.kind, symbol=symbol, timeframe=timeframe) == []
