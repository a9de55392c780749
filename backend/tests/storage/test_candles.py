"""CandleRepository on SQLite and PostgreSQL with real Binance candles: idempotent upserts, causal loads, gaps."""

from __future__ import annotations

from sqlalchemy import func, select

from app.domain import Candle, timeframe_ms
from app.storage.candles import COLUMNS_SYMBOLS_PER_QUERY, UPSERT_BATCH_ROWS, CandleRepository
from app.storage.gaps import Gap
from app.storage.models import CandleModel
from tests.support.candles import bundled_candles
from tests.support.storage import StorageBackend

HOUR_MS = timeframe_ms("1h")


def _store(backend: StorageBackend, symbol: str, candles: tuple[Candle, ...], timeframe: str = "1h") -> int:
    with backend.session_factory.begin() as session:
        return CandleRepository(session).upsert(exchange="binance", symbol=symbol, timeframe=timeframe, candles=candles)


def _count(backend: StorageBackend) -> int:
    with backend.session_factory() as session:
        return session.execute(select(func.count()).select_from(CandleModel)).scalar_one()


def test_upsert_is_idempotent_and_counts_inserted_rows(backend: StorageBackend) -> None:
    candles = bundled_candles("BTC", "1h")[: UPSERT_BATCH_ROWS * 2 + 37]
    assert _store(backend, "BTC/USDT", candles[:700]) == 700
    assert _store(backend, "BTC/USDT", candles[:700]) == 0
    assert _store(backend, "BTC/USDT", candles) == len(candles) - 700
    assert _count(backend) == len(candles)
    assert _store(backend, "BTC/USDT", ()) == 0


def test_same_times_for_other_symbols_and_timeframes_are_distinct(backend: StorageBackend) -> None:
    assert _store(backend, "BTC/USDT", bundled_candles("BTC", "1h")[:50]) == 50
    assert _store(backend, "ETH/USDT", bundled_candles("ETH", "1h")[:50]) == 50
    assert _store(backend, "BTC/USDT", bundled_candles("BTC", "1d")[:50], timeframe="1d") == 50
    assert _count(backend) == 150


def test_last_and_latest_open_times(backend: StorageBackend) -> None:
    btc, eth = bundled_candles("BTC", "1h")[:100], bundled_candles("ETH", "1h")[:120]
    with backend.session_factory() as session:
        repo = CandleRepository(session)
        assert repo.last_open_time_ms(exchange="binance", symbol="BTC/USDT", timeframe="1h") is None
        assert repo.latest_open_time_ms(exchange="binance", timeframe="1h") is None
    _store(backend, "BTC/USDT", btc)
    _store(backend, "ETH/USDT", eth)
    with backend.session_factory() as session:
        repo = CandleRepository(session)
        assert repo.last_open_time_ms(exchange="binance", symbol="BTC/USDT", timeframe="1h") == btc[-1].open_time_ms
        assert repo.latest_open_time_ms(exchange="binance", timeframe="1h") == eth[-1].open_time_ms
        assert repo.latest_open_time_ms(exchange="upbit", timeframe="1h") is None


def test_load_returns_the_newest_closed_candles_ascending(backend: StorageBackend) -> None:
    stored = {base: bundled_candles(base, "1h")[:300] for base in ("BTC", "ETH", "SOL")}
    for base, candles in stored.items():
        _store(backend, f"{base}/USDT", candles)
    # until_ms falls half-way through candle 200: that candle is still open, 199 is the last closed one.
    until_ms = stored["BTC"][200].open_time_ms + HOUR_MS // 2
    with backend.session_factory() as session:
        loaded = CandleRepository(session).load(
            exchange="binance",
            timeframe="1h",
            symbols=["BTC/USDT", "ETH/USDT", "SOL/USDT", "LUNA/USDT"],
            until_ms=until_ms,
            limit=50,
        )
    assert set(loaded) == {"BTC/USDT", "ETH/USDT", "SOL/USDT", "LUNA/USDT"}
    assert loaded["LUNA/USDT"] == []
    for base, candles in stored.items():
        assert loaded[f"{base}/USDT"] == list(candles[150:200])
        assert all(c.open_time_ms + HOUR_MS <= until_ms for c in loaded[f"{base}/USDT"])


def test_load_includes_a_candle_closing_exactly_at_until(backend: StorageBackend) -> None:
    candles = bundled_candles("ETH", "1h")[:10]
    _store(backend, "ETH/USDT", candles)
    with backend.session_factory() as session:
        repo = CandleRepository(session)
        closed = repo.load(
            exchange="binance",
            timeframe="1h",
            symbols=["ETH/USDT"],
            until_ms=candles[4].open_time_ms + HOUR_MS,
            limit=100,
        )
        short = repo.load(
            exchange="binance",
            timeframe="1h",
            symbols=["ETH/USDT"],
            until_ms=candles[-1].open_time_ms + HOUR_MS,
            limit=3,
        )
    assert closed["ETH/USDT"] == list(candles[:5])
    assert short["ETH/USDT"] == list(candles[-3:])


def test_load_keeps_gaps_as_gaps(backend: StorageBackend) -> None:
    candles = bundled_candles("SOL", "1h")[:20]
    with_gap = candles[:8] + candles[12:]
    _store(backend, "SOL/USDT", with_gap)
    with backend.session_factory() as session:
        loaded = CandleRepository(session).load(
            exchange="binance",
            timeframe="1h",
            symbols=["SOL/USDT"],
            until_ms=candles[-1].open_time_ms + HOUR_MS,
            limit=14,
        )
    assert loaded["SOL/USDT"] == list(with_gap[-14:])


def test_gaps_of_stored_candles_per_symbol_and_span(backend: StorageBackend) -> None:
    candles = bundled_candles("SOL", "1h")[:20]
    _store(backend, "SOL/USDT", candles[:8] + candles[12:])
    _store(backend, "ETH/USDT", bundled_candles("ETH", "1h")[:20])
    _store(backend, "SOL/USDT", bundled_candles("SOL", "1d")[:3], timeframe="1d")
    first_ms, hole_ms = candles[0].open_time_ms, candles[8].open_time_ms
    with backend.session_factory() as session:
        repo = CandleRepository(session)
        between = repo.gaps(exchange="binance", symbol="SOL/USDT", timeframe="1h")
        span = repo.gaps(
            exchange="binance",
            symbol="SOL/USDT",
            timeframe="1h",
            start_ms=first_ms - 2 * HOUR_MS,
            end_ms=candles[-1].open_time_ms + 4 * HOUR_MS,
        )
        inside = repo.gaps(
            exchange="binance", symbol="SOL/USDT", timeframe="1h", start_ms=hole_ms, end_ms=hole_ms + HOUR_MS
        )
        eth = repo.gaps(exchange="binance", symbol="ETH/USDT", timeframe="1h")
        unknown = repo.gaps(exchange="upbit", symbol="SOL/USDT", timeframe="1h")
        unknown_span = repo.gaps(exchange="upbit", symbol="SOL/USDT", timeframe="1h", start_ms=0, end_ms=3 * HOUR_MS)
    assert between == [Gap(hole_ms, 4)]
    assert span == [Gap(first_ms - 2 * HOUR_MS, 2), Gap(hole_ms, 4), Gap(candles[-1].open_time_ms + HOUR_MS, 3)]
    assert inside == [Gap(hole_ms, 1)]
    assert eth == [] and unknown == []
    assert unknown_span == [Gap(0, 3)]


def test_load_columns_are_the_loaded_candles_as_columns(backend: StorageBackend) -> None:
    stored = {base: bundled_candles(base, "1h")[:300] for base in ("BTC", "ETH", "SOL")}
    for base, candles in stored.items():
        _store(backend, f"{base}/USDT", candles[:120] + candles[125:])  # a gap stays a gap
    _store(backend, "BTC/USDT", bundled_candles("BTC", "1d")[:30], timeframe="1d")
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "LUNA/USDT"]
    until_ms = stored["BTC"][200].open_time_ms + HOUR_MS // 2
    query = {"exchange": "binance", "timeframe": "1h", "symbols": symbols, "until_ms": until_ms, "limit": 150}
    with backend.session_factory() as session:
        repo = CandleRepository(session)
        loaded, columns = repo.load(**query), repo.load_columns(**query)
    assert list(columns) == symbols and len(columns["LUNA/USDT"]) == 0
    for symbol in symbols:
        candles = loaded[symbol]
        assert list(columns[symbol].open_time_ms) == [c.open_time_ms for c in candles]
        for name in ("open", "high", "low", "close", "volume"):
            assert list(getattr(columns[symbol], name)) == [getattr(c, name) for c in candles]
    assert len(columns["BTC/USDT"]) == 150 and columns["BTC/USDT"].open_time_ms[-1] + HOUR_MS <= until_ms


def test_load_columns_reads_many_symbols_in_batches(backend: StorageBackend) -> None:
    btc = bundled_candles("BTC", "1h")[:40]
    symbols = [f"B{i}/USDT" for i in range(COLUMNS_SYMBOLS_PER_QUERY * 2 + 3)]
    for symbol in symbols:
        _store(backend, symbol, btc)
    with backend.session_factory() as session:
        columns = CandleRepository(session).load_columns(
            exchange="binance", timeframe="1h", symbols=symbols, until_ms=btc[-1].open_time_ms + HOUR_MS, limit=25
        )
    assert list(columns) == symbols
    assert all(list(c.close) == [candle.close for candle in btc[-25:]] for c in columns.values())
