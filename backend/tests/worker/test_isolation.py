"""One bad input never stops the rest: the worker cycle with one damaged symbol, on both storage stacks.

For every kind of damage to one symbol's data (a replay file truncated, not JSON, a wrong row shape, a string or
non-finite value, descending or duplicate times, empty; in the analysis or the levels timeframe; an exchange error
for that symbol; a price discontinuity) the run is ``partial``, the symbol's one-line reason is in the run's errors
and in a structured log event, and every other symbol is published with the values it has in an undamaged run:
exactly the run of the same data without the damaged symbol, and the same per-symbol values (price, 24h change and
volume, levels) as the run of the whole undamaged data. Nothing usable left (every file damaged, the benchmark pair
damaged, too little history) fails the run with one line and no traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from app.config import Settings
from app.domain import Candle, Market, RunStatus, Snapshot, Ticker, TickersSource
from app.exchange import ExchangeError, MarketSource, RateLimited, build_source
from app.storage import migrate
from app.storage.db import make_engine, make_session_factory
from app.storage.reader import SnapshotReader
from app.worker.cycle import CycleOutcome, ExchangeCycle
from tests.support.candles import copy_replay_pairs, write_candle_file
from tests.support.damage import DAMAGES, read_rows
from tests.support.storage import StorageBackend, engine_database

BASES = ("BTC", "ETH", "SOL", "XRP", "ADA")
DAMAGED = "ADA/USDT"


def settings_for(url: str, replay_dir: Path) -> Settings:
    return Settings(
        _env_file=None, database_url=url, replay_data_dir=replay_dir, replay_warmup_candles=120, lookback_candles=200
    )


class WrappedSource:
    """A real source whose ``fail`` calls raise ``error`` (``fail``: (method, symbol or None for any))."""

    def __init__(self, inner: MarketSource, *, fail: set[tuple[str, str | None]], error: ExchangeError) -> None:
        self.inner, self.fail, self.error = inner, fail, error
        self.exchange_id, self.quote = inner.exchange_id, inner.quote
        self.tickers_source = TickersSource.EXCHANGE  # as a live exchange would say

    async def start_cycle(self, *, stored_until_ms: int | None = None) -> int:
        return await self.inner.start_cycle(stored_until_ms=stored_until_ms)

    async def load_markets(self) -> list[Market]:
        return await self.inner.load_markets()

    async def fetch_tickers(self, symbols: Sequence[str]) -> dict[str, Ticker]:
        if ("fetch_tickers", None) in self.fail:
            raise self.error
        return await self.inner.fetch_tickers(symbols)

    async def fetch_closed_candles(
        self, symbol: str, timeframe: str, *, since_ms: int | None, limit: int, now_ms: int
    ) -> list[Candle]:
        if ("fetch_closed_candles", symbol) in self.fail:
            raise self.error
        return await self.inner.fetch_closed_candles(symbol, timeframe, since_ms=since_ms, limit=limit, now_ms=now_ms)

    async def close(self) -> None:
        await self.inner.close()


async def run_cycle(
    url: str, replay_dir: Path, *, wrap: dict[str, object] | None = None
) -> tuple[CycleOutcome, Snapshot | None, list[dict[str, object]]]:
    """One cycle on the replay of ``replay_dir`` (through ``WrappedSource(**wrap)`` if given): outcome, the snapshot
    the database serves afterwards, and the log events."""
    settings = settings_for(url, replay_dir)
    engine = make_engine(url)
    source: MarketSource = build_source(settings, "binance", resume_from_ms=None)
    if wrap is not None:
        source = WrappedSource(source, **wrap)  # type: ignore[arg-type]
    try:
        cycle = ExchangeCycle(
            source=source, settings=settings, session_factory=make_session_factory(engine), cache=None
        )
        with capture_logs() as logs:
            outcome = await cycle.run_once()
        served = SnapshotReader(database=engine_database(engine), cache=None).get("binance", use_cache=False)
    finally:
        await source.close()
        engine.dispose()
    return outcome, None if served is None else served[0], logs


def _reference(tmp_path: Path, bases: Sequence[str]) -> Snapshot:
    url = f"sqlite:///{tmp_path / 'reference.sqlite3'}"
    migrate.upgrade(url)
    outcome, snapshot, _ = asyncio.run(run_cycle(url, copy_replay_pairs(tmp_path / "replay", bases)))
    assert outcome.status is RunStatus.SUCCEEDED and snapshot is not None
    return snapshot


@pytest.fixture(scope="module")
def undamaged(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """The run of the whole undamaged data."""
    return _reference(tmp_path_factory.mktemp("undamaged"), BASES)


@pytest.fixture(scope="module")
def without_damaged(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """The run of the same data without the damaged symbol's files."""
    return _reference(tmp_path_factory.mktemp("without"), [b for b in BASES if f"{b}/USDT" != DAMAGED])


@pytest.fixture
def references(undamaged: Snapshot, without_damaged: Snapshot) -> tuple[Snapshot, Snapshot]:
    """(the undamaged run, the run without the damaged symbol)."""
    return undamaged, without_damaged


def assert_others_unchanged(served: Snapshot | None, undamaged: Snapshot, without: Snapshot | None) -> None:
    """Every other symbol is published as in an undamaged run (exactly as without the damaged one, when given)."""
    assert served is not None
    others = {f"{b}/USDT" for b in BASES} - {DAMAGED}
    by_symbol = {r.symbol: r for r in served.recommendations}
    assert others <= set(by_symbol)
    for rec in undamaged.recommendations:
        if rec.symbol in others:
            mine = by_symbol[rec.symbol]
            assert (mine.current_price, mine.price_change_24h, mine.volume_24h) == (
                rec.current_price,
                rec.price_change_24h,
                rec.volume_24h,
            )
            assert served.levels[rec.symbol] == undamaged.levels[rec.symbol]
    if without is not None:
        assert served.recommendations == without.recommendations
        assert served.levels == without.levels and served.market == without.market
        assert served.data_as_of == without.data_as_of


FILE_DAMAGES = [pytest.param(kind, "1h", id=f"{kind}-1h") for kind in sorted(DAMAGES)] + [
    pytest.param(kind, "1d", id=f"{kind}-1d") for kind in ("truncated", "string_value", "descending")
]


@pytest.mark.parametrize(("kind", "timeframe"), FILE_DAMAGES)
async def test_a_damaged_replay_file_leaves_only_its_symbol_out(
    backend: StorageBackend, tmp_path: Path, references: tuple[Snapshot, Snapshot], kind: str, timeframe: str
) -> None:
    undamaged, without_damaged = references
    replay = copy_replay_pairs(tmp_path / "replay", BASES)
    name = f"{timeframe}/{DAMAGED.replace('/', '_')}-{timeframe}.json.gz"
    problem = DAMAGES[kind](replay / name)
    outcome, served, logs = await run_cycle(backend.url, replay)
    assert outcome.status is RunStatus.PARTIAL and outcome.error is None
    assert list(outcome.errors) == [DAMAGED]
    reason = outcome.errors[DAMAGED]
    assert reason.startswith(f"{timeframe}: BadData: replay file {name}: ") and problem in reason
    assert "\n" not in reason
    failed = [(e["symbol"], e["timeframe"], e["error"]) for e in logs if e["event"] == "collect_failed"]
    assert failed == [(DAMAGED, timeframe, reason.split(": ", 1)[1])]
    assert not [e for e in logs if e["log_level"] in ("error", "critical") or "exc_info" in e]
    assert served is not None and served.run_id == outcome.run_id and served.errors == {DAMAGED: reason}
    assert_others_unchanged(served, undamaged, without_damaged)


async def test_an_exchange_error_for_one_symbol_leaves_only_it_out(
    backend: StorageBackend, tmp_path: Path, undamaged: Snapshot, without_damaged: Snapshot
) -> None:
    replay = copy_replay_pairs(tmp_path / "replay", BASES)
    error = RateLimited("429 Too Many Requests", retry_after_s=5.0)
    wrap = {"fail": {("fetch_closed_candles", DAMAGED)}, "error": error}
    outcome, served, logs = await run_cycle(backend.url, replay, wrap=wrap)
    assert outcome.status is RunStatus.PARTIAL
    reason = "1h: RateLimited: 429 Too Many Requests; 1d: RateLimited: 429 Too Many Requests"
    assert outcome.errors == {DAMAGED: reason}
    assert [(e["symbol"], e["timeframe"]) for e in logs if e["event"] == "collect_failed"] == [
        (DAMAGED, "1h"),
        (DAMAGED, "1d"),
    ]
    assert_others_unchanged(served, undamaged, without_damaged)
    assert served is not None and served.tickers_source is TickersSource.EXCHANGE


async def test_a_failed_tickers_call_falls_back_to_the_stored_candles(
    backend: StorageBackend, tmp_path: Path, undamaged: Snapshot
) -> None:
    replay = copy_replay_pairs(tmp_path / "replay", BASES)
    wrap = {"fail": {("fetch_tickers", None)}, "error": ExchangeError("tickers: 500 Internal Server Error")}
    outcome, served, logs = await run_cycle(backend.url, replay, wrap=wrap)
    assert outcome.status is RunStatus.SUCCEEDED and outcome.tickers_source is TickersSource.CANDLES
    assert [e["error"] for e in logs if e["event"] == "tickers_fallback"] == [
        "ExchangeError: tickers: 500 Internal Server Error"
    ]
    assert served is not None and served.tickers_source is TickersSource.CANDLES
    # the replay's tickers are derived from the same candles by the same definition: every value is the same
    assert served.recommendations == undamaged.recommendations and served.market == undamaged.market
    assert undamaged.tickers_source is TickersSource.CANDLES


async def test_a_price_discontinuity_is_reported_and_the_others_keep_their_values(
    backend: StorageBackend, tmp_path: Path, undamaged: Snapshot
) -> None:
    replay = copy_replay_pairs(tmp_path / "replay", BASES)
    path = replay / "1h" / "ADA_USDT-1h.json.gz"
    swapped = [  # a 1:1000 token swap 50 hours before the first cycle's now (warm-up 120 candles)
        [row[0], *(price / 1000 for price in row[1:5]), row[5] * 1000] if number >= 70 else row
        for number, row in enumerate(read_rows(path))
    ]
    write_candle_file(path, swapped)
    outcome, served, logs = await run_cycle(backend.url, replay)
    assert outcome.status is RunStatus.PARTIAL and list(outcome.errors) == [DAMAGED]
    assert outcome.errors[DAMAGED].startswith("1h candles: price discontinuity at ")
    assert outcome.errors[DAMAGED].endswith("(x0.001 between candles); analysed on the 50 candles after it")
    assert [e["symbol"] for e in logs if e["event"] == "analysis_hazard"] == [DAMAGED]
    assert_others_unchanged(served, undamaged, without=None)


async def test_the_benchmark_pair_damaged_fails_the_run_and_says_why(backend: StorageBackend, tmp_path: Path) -> None:
    replay = copy_replay_pairs(tmp_path / "replay", BASES)
    DAMAGES["truncated"](replay / "1h" / "BTC_USDT-1h.json.gz")
    outcome, served, logs = await run_cycle(backend.url, replay)
    assert outcome.status is RunStatus.FAILED and served is None
    assert outcome.error is not None
    assert outcome.error.startswith("benchmark BTC/USDT left out (1h: BadData: replay file 1h/BTC_USDT-1h.json.gz: ")
    assert outcome.error.endswith("): the market status follows it")
    assert not [e for e in logs if e["event"] == "run_crashed"]


async def test_nothing_usable_fails_in_one_line_without_a_traceback(backend: StorageBackend, tmp_path: Path) -> None:
    replay = copy_replay_pairs(tmp_path / "replay", BASES)
    for path in (replay / "1h").iterdir():
        DAMAGES["bad_json"](path)
    outcome, served, logs = await run_cycle(backend.url, replay)
    assert outcome.status is RunStatus.FAILED and served is None
    assert outcome.error == (
        "clock: ExchangeError: replay data for USDT 1h has no usable candles (5 files not usable: see dantaro "
        "check-data)"
    )
    assert not [e for e in logs if e["event"] == "run_crashed" or "exc_info" in e]
    finished = [e for e in logs if e["event"] == "run_finished"]
    assert finished[0]["status"] == "failed" and finished[0]["now_ms"] is None


async def test_too_little_history_everywhere_fails_without_a_traceback(backend: StorageBackend, tmp_path: Path) -> None:
    replay = copy_replay_pairs(tmp_path / "replay", BASES)
    settings = settings_for(backend.url, replay).model_copy(update={"replay_warmup_candles": 10})
    source = build_source(settings, "binance", resume_from_ms=None)
    cycle = ExchangeCycle(source=source, settings=settings, session_factory=backend.session_factory, cache=None)
    try:
        with capture_logs() as logs:
            outcome = await cycle.run_once()
    finally:
        await source.close()
    assert outcome.status is RunStatus.FAILED and outcome.error == "no symbol could be analysed"
    assert set(outcome.errors) == {f"{b}/USDT" for b in BASES}
    assert all(reason.startswith("1h candles: too few candles") for reason in outcome.errors.values())
    assert not [e for e in logs if e["event"] == "run_crashed"]
