"""The worker cycle on the replay source, on SQLite + in-process cache and on PostgreSQL + Redis.

Checks what a user of the served data relies on: each cycle publishes one whole run, the replay clock moves one
candle per cycle, candles are never duplicated, a failing exchange keeps the last good snapshot current, and one
failing symbol yields a partial run that still publishes the others; gaps in collected candles are logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from app.config import Settings
from app.domain import Candle, Market, RunStatus, Ticker, timeframe_ms
from app.exchange import ExchangeUnavailable, MarketSource, build_source
from app.storage.cache import SnapshotCache
from app.storage.models import AnalysisRunModel, CandleModel
from app.storage.reader import SnapshotReader
from app.worker.collect import log_gaps
from app.worker.cycle import ExchangeCycle
from tests.support.candles import copy_replay_pairs
from tests.support.storage import StorageBackend

BASES = ("BTC", "ETH", "SOL", "XRP", "ADA")
HOUR_MS = timeframe_ms("1h")


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A replay folder with a few real pairs, so cycles stay quick."""
    return copy_replay_pairs(tmp_path_factory.mktemp("replay"), BASES)


def _settings(backend: StorageBackend, replay_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=backend.url,
        replay_data_dir=replay_dir,
        replay_warmup_candles=120,
        lookback_candles=200,
    )


class FailingSource:
    """Delegates to a real source but fails candle fetches for the chosen symbols (all when ``symbols`` is None)."""

    def __init__(self, inner: MarketSource, *, symbols: Sequence[str] | None) -> None:
        self.inner = inner
        self.symbols = symbols
        self.exchange_id = inner.exchange_id
        self.quote = inner.quote
        self.tickers_source = inner.tickers_source

    async def start_cycle(self, *, stored_until_ms: int | None = None) -> int:
        return await self.inner.start_cycle(stored_until_ms=stored_until_ms)

    async def load_markets(self) -> list[Market]:
        return await self.inner.load_markets()

    async def fetch_tickers(self, symbols: Sequence[str]) -> dict[str, Ticker]:
        return await self.inner.fetch_tickers(symbols)

    async def fetch_closed_candles(
        self, symbol: str, timeframe: str, *, since_ms: int | None, limit: int, now_ms: int
    ) -> list[Candle]:
        if self.symbols is None or symbol in self.symbols:
            raise ExchangeUnavailable(f"simulated outage for {symbol}")
        return await self.inner.fetch_closed_candles(symbol, timeframe, since_ms=since_ms, limit=limit, now_ms=now_ms)

    async def close(self) -> None:
        await self.inner.close()


def _cycle(
    settings: Settings, backend: StorageBackend, cache: SnapshotCache | None, source: MarketSource
) -> ExchangeCycle:
    return ExchangeCycle(source=source, settings=settings, session_factory=backend.session_factory, cache=cache)


def _candle_count(backend: StorageBackend, *, symbol: str, timeframe: str) -> tuple[int, int]:
    with backend.session_factory() as session:
        query = select(func.count(), func.count(func.distinct(CandleModel.open_time_ms))).where(
            CandleModel.symbol == symbol, CandleModel.timeframe == timeframe
        )
        total, distinct = session.execute(query).one()
    return int(total), int(distinct)


async def test_cycles_publish_whole_runs_one_candle_apart(
    backend: StorageBackend, cache: SnapshotCache, replay_dir: Path
) -> None:
    settings = _settings(backend, replay_dir)
    source = build_source(settings, "binance", resume_from_ms=None)
    cycle = _cycle(settings, backend, cache, source)
    try:
        first = await cycle.run_once()
        second = await cycle.run_once()
    finally:
        await source.close()
    assert (first.status, second.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    assert first.symbols_ok == second.symbols_ok == len(BASES)
    reader = SnapshotReader(database=backend.database, cache=cache)
    served = reader.get("binance")
    assert served is not None
    snapshot, _source = served
    assert snapshot.run_id == second.run_id
    database_copy = reader.get("binance", use_cache=False)
    assert database_copy is not None and database_copy[0].run_id == second.run_id
    assert {r.symbol for r in snapshot.recommendations} == {f"{b}/USDT" for b in BASES}
    assert "BTC/USDT" in snapshot.levels
    total, distinct = _candle_count(backend, symbol="BTC/USDT", timeframe="1h")
    assert total == distinct == settings.replay_warmup_candles + 1


async def test_as_of_advances_one_candle_per_cycle(backend: StorageBackend, replay_dir: Path) -> None:
    settings = _settings(backend, replay_dir)
    source = build_source(settings, "binance", resume_from_ms=None)
    cycle = _cycle(settings, backend, cache=None, source=source)
    reader = SnapshotReader(database=backend.database, cache=None)
    as_of_ms: list[int] = []
    try:
        for _ in range(3):
            await cycle.run_once()
            served = reader.get("binance", use_cache=False)
            assert served is not None
            as_of_ms.append(int(served[0].data_as_of.timestamp() * 1000))
    finally:
        await source.close()
    assert [b - a for a, b in pairwise(as_of_ms)] == [HOUR_MS, HOUR_MS]


async def test_unreachable_exchange_keeps_last_good_snapshot(
    backend: StorageBackend, cache: SnapshotCache, replay_dir: Path
) -> None:
    settings = _settings(backend, replay_dir)
    source = build_source(settings, "binance", resume_from_ms=None)
    try:
        good = await _cycle(settings, backend, cache, source).run_once()
        bad = await _cycle(settings, backend, cache, FailingSource(source, symbols=None)).run_once()
    finally:
        await source.close()
    assert bad.status is RunStatus.FAILED
    assert set(bad.errors) == {f"{b}/USDT" for b in BASES}
    served = SnapshotReader(database=backend.database, cache=cache).get("binance")
    assert served is not None and served[0].run_id == good.run_id
    with backend.session_factory() as session:
        failed = session.get(AnalysisRunModel, bad.run_id)
    assert failed is not None and failed.status == RunStatus.FAILED and failed.published_at is None


async def test_one_failing_symbol_publishes_the_others(backend: StorageBackend, replay_dir: Path) -> None:
    settings = _settings(backend, replay_dir)
    source = build_source(settings, "binance", resume_from_ms=None)
    try:
        outcome = await _cycle(settings, backend, None, FailingSource(source, symbols=["ETH/USDT"])).run_once()
    finally:
        await source.close()
    assert outcome.status is RunStatus.PARTIAL
    assert list(outcome.errors) == ["ETH/USDT"]
    assert "simulated outage" in outcome.errors["ETH/USDT"]
    served = SnapshotReader(database=backend.database, cache=None).get("binance", use_cache=False)
    assert served is not None
    assert "ETH/USDT" not in {r.symbol for r in served[0].recommendations}
    assert len(served[0].recommendations) == len(BASES) - 1


@pytest.mark.parametrize(
    ("last_open_ms", "opens_h", "expected"),
    [
        pytest.param(None, [0, 1, 2], [], id="first collection, no gap"),
        pytest.param(None, [0, 3, 4, 6], [(1, 2), (5, 1)], id="first collection, gaps between"),
        pytest.param(0, [1, 2], [], id="continues the stored candles"),
        pytest.param(0, [3, 4], [(1, 2)], id="gap before the new candles"),
        pytest.param(2, [2, 3], [], id="a re-sent stored candle is no gap"),
    ],
)
def test_gaps_in_collected_candles_are_logged(
    last_open_ms: int | None, opens_h: list[int], expected: list[tuple[int, int]]
) -> None:
    candles = [Candle(h * HOUR_MS, 1.0, 1.0, 1.0, 1.0, 1.0) for h in opens_h]
    with capture_logs() as logs:
        missing = log_gaps(
            "binance",
            "BTC/USDT",
            "1h",
            last_open_ms=None if last_open_ms is None else last_open_ms * HOUR_MS,
            candles=candles,
        )
    events = [e for e in logs if e["event"] == "candle_gap"]
    assert [(e["first_missing_ms"] // HOUR_MS, e["missing"]) for e in events] == expected
    assert all(e["exchange"] == "binance" and e["symbol"] == "BTC/USDT" and e["timeframe"] == "1h" for e in events)
    assert missing == sum(count for _, count in expected)


class RedenominatingSource(FailingSource):
    """A real source whose ``symbol`` had a 1:1000 token swap ``hours`` before ``now``: newer 1h prices / 1000."""

    def __init__(self, inner: MarketSource, *, symbol: str, hours: int) -> None:
        super().__init__(inner, symbols=())
        self.symbol, self.hours = symbol, hours

    async def fetch_closed_candles(
        self, symbol: str, timeframe: str, *, since_ms: int | None, limit: int, now_ms: int
    ) -> list[Candle]:
        candles = await super().fetch_closed_candles(symbol, timeframe, since_ms=since_ms, limit=limit, now_ms=now_ms)
        if symbol != self.symbol or timeframe != "1h":
            return candles
        swap_ms = now_ms - self.hours * HOUR_MS
        return [
            Candle(c.open_time_ms, c.open / 1000, c.high / 1000, c.low / 1000, c.close / 1000, c.volume * 1000)
            if c.open_time_ms >= swap_ms
            else c
            for c in candles
        ]


async def test_data_hazards_are_logged_and_recorded(backend: StorageBackend, replay_dir: Path) -> None:
    settings = _settings(backend, replay_dir)
    source = build_source(settings, "binance", resume_from_ms=None)
    try:
        with capture_logs() as logs:
            outcome = await _cycle(
                settings, backend, None, RedenominatingSource(source, symbol="SOL/USDT", hours=50)
            ).run_once()
    finally:
        await source.close()
    assert outcome.status is RunStatus.PARTIAL and list(outcome.errors) == ["SOL/USDT"]
    reason = outcome.errors["SOL/USDT"]
    assert reason.startswith("1h candles: price discontinuity at ") and reason.endswith(
        "(x0.001 between candles); analysed on the 50 candles after it"
    )
    events = [e for e in logs if e["event"] == "analysis_hazard"]
    assert [(e["exchange"], e["symbol"], e["reason"]) for e in events] == [("binance", "SOL/USDT", reason)]
    served = SnapshotReader(database=backend.database, cache=None).get("binance", use_cache=False)
    assert served is not None and served[0].errors == {"SOL/USDT": reason}
    assert len(served[0].recommendations) == len(BASES)
