"""ReplaySource over the bundled real Binance history (and small copies of it in tmp_path)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from app.config import BUNDLED_DATA_DIR
from app.domain import Market
from app.exchange import BadData, ReplaySource, SymbolNotFound
from tests.support.candles import bundled_candles, candle_rows, write_candle_file

HOUR_MS, DAY_MS = 3_600_000, 86_400_000
BTC_1H = bundled_candles("BTC", "1h")


def bundled(*, warmup: int = 300, resume_from_ms: int | None = None, data_dir: Path = BUNDLED_DATA_DIR) -> ReplaySource:
    return ReplaySource(
        data_dir=data_dir,
        timeframes=["1h", "1d"],
        step_timeframe="1h",
        warmup_candles=warmup,
        resume_from_ms=resume_from_ms,
    )


def small_copy(tmp_path: Path, *, hours: int, plain_json: bool = False) -> Path:
    """The first ``hours`` hourly BTC and ETH candles of the bundled data, gzip or plain JSON."""
    for base in ("BTC", "ETH"):
        name = f"{base}_USDT-1h.json" if plain_json else f"{base}_USDT-1h.json.gz"
        write_candle_file(tmp_path / "1h" / name, candle_rows(bundled_candles(base, "1h")[:hours]))
    return tmp_path


async def test_clock_starts_after_warmup_and_advances_one_step() -> None:
    source = bundled(warmup=300)
    first_open = BTC_1H[0].open_time_ms
    assert await source.start_cycle() == first_open + 300 * HOUR_MS
    assert await source.start_cycle() == first_open + 301 * HOUR_MS
    candles = await source.fetch_closed_candles("BTC/USDT", "1h", since_ms=None, limit=1000, now_ms=2**62)
    assert len(candles) == 301
    assert candles[-1].open_time_ms + HOUR_MS == source.now_ms


async def test_candles_never_close_after_the_simulated_now() -> None:
    source = bundled(warmup=100)
    now_ms = await source.start_cycle()
    for timeframe, step_ms in (("1h", HOUR_MS), ("1d", DAY_MS)):
        candles = await source.fetch_closed_candles("ETH/USDT", timeframe, since_ms=None, limit=50, now_ms=2**62)
        assert len(candles) == 50
        assert candles[-1].open_time_ms + step_ms <= now_ms < candles[-1].open_time_ms + 2 * step_ms
        assert [c.open_time_ms for c in candles] == sorted({c.open_time_ms for c in candles})
    earlier = await source.fetch_closed_candles("ETH/USDT", "1h", since_ms=None, limit=5, now_ms=now_ms - 10 * HOUR_MS)
    assert earlier[-1].open_time_ms + HOUR_MS == now_ms - 10 * HOUR_MS


async def test_since_returns_the_oldest_from_since_and_matches_the_file() -> None:
    source = bundled(warmup=300)
    await source.start_cycle()
    since_ms = BTC_1H[10].open_time_ms
    candles = await source.fetch_closed_candles("BTC/USDT", "1h", since_ms=since_ms, limit=3, now_ms=2**62)
    assert candles == list(BTC_1H[10:13])
    assert await source.fetch_closed_candles("BTC/USDT", "1h", since_ms=2**50, limit=3, now_ms=2**62) == []


async def test_resume_starts_one_step_after_the_resume_point_but_never_before_warmup() -> None:
    first_open = BTC_1H[0].open_time_ms
    later = first_open + 1000 * HOUR_MS
    assert await bundled(warmup=300, resume_from_ms=later).start_cycle() == later + HOUR_MS
    assert await bundled(warmup=300, resume_from_ms=first_open).start_cycle() == first_open + 300 * HOUR_MS


async def test_exhausted_clock_stays_at_the_last_close_and_logs_once(tmp_path: Path) -> None:
    source = bundled(data_dir=small_copy(tmp_path, hours=10), warmup=8)
    first_open = BTC_1H[0].open_time_ms
    with capture_logs() as logs:
        clock = [await source.start_cycle() for _ in range(5)]
    end_ms = first_open + 10 * HOUR_MS
    assert clock == [end_ms - 2 * HOUR_MS, end_ms - HOUR_MS, end_ms, end_ms, end_ms]
    assert [entry["event"] for entry in logs].count("replay_exhausted") == 1


async def test_tickers_are_computed_from_the_candles_closed_by_now() -> None:
    source = bundled(warmup=500)
    now_ms = await source.start_cycle()
    closed = [c for c in BTC_1H if c.open_time_ms + HOUR_MS <= now_ms]
    last_day = closed[-24:]
    tickers = await source.fetch_tickers(["BTC/USDT", "NOPE/USDT"])
    assert list(tickers) == ["BTC/USDT"]
    btc = tickers["BTC/USDT"]
    assert btc.last == closed[-1].close and btc.timestamp_ms == now_ms
    assert btc.change_24h_pct == pytest.approx((closed[-1].close / closed[-25].close - 1) * 100)
    assert btc.base_volume_24h == pytest.approx(sum(c.volume for c in last_day))
    assert btc.quote_volume_24h == pytest.approx(sum(c.close * c.volume for c in last_day))


async def test_markets_and_plain_json_files(tmp_path: Path) -> None:
    source = bundled(data_dir=small_copy(tmp_path, hours=30, plain_json=True), warmup=5)
    assert await source.load_markets() == [Market("BTC/USDT", "BTC", "USDT"), Market("ETH/USDT", "ETH", "USDT")]
    now_ms = await source.start_cycle()
    candles = await source.fetch_closed_candles("ETH/USDT", "1h", since_ms=None, limit=10, now_ms=now_ms)
    assert candles == list(bundled_candles("ETH", "1h")[:5])


@pytest.mark.parametrize(
    ("order", "problem"),
    [
        pytest.param([3, 0, 1, 2, 4, 5], "row 1: open time {t0} is before row 0's (rows must ascend", id="unsorted"),
        pytest.param([0, 1, 2, 2, 3, 4, 5], "row 3: duplicate open time {t2} (row 2 has it too)", id="duplicate"),
    ],
)
async def test_unsorted_or_duplicate_rows_leave_only_that_file_out(
    tmp_path: Path, order: list[int], problem: str
) -> None:
    rows = candle_rows(BTC_1H[:6])
    small_copy(tmp_path, hours=6)
    write_candle_file(tmp_path / "1h" / "BTC_USDT-1h.json.gz", [rows[i] for i in order])
    source = bundled(data_dir=tmp_path, warmup=5)
    await source.start_cycle()
    expected = problem.format(t0=BTC_1H[0].open_time_ms, t2=BTC_1H[2].open_time_ms)
    with pytest.raises(BadData, match=re.escape(f"replay file 1h/BTC_USDT-1h.json.gz: {expected}")):
        await source.fetch_closed_candles("BTC/USDT", "1h", since_ms=None, limit=10, now_ms=2**62)
    assert [m.symbol for m in await source.load_markets()] == ["BTC/USDT", "ETH/USDT"]  # still listed: its reason shows
    assert list(await source.fetch_tickers(["BTC/USDT", "ETH/USDT"])) == ["ETH/USDT"]
    eth = await source.fetch_closed_candles("ETH/USDT", "1h", since_ms=None, limit=10, now_ms=2**62)
    assert eth == list(bundled_candles("ETH", "1h")[:5])


async def test_unknown_symbol_or_timeframe_raises_symbol_not_found() -> None:
    source = bundled()
    await source.start_cycle()
    with pytest.raises(SymbolNotFound):
        await source.fetch_closed_candles("NOPE/USDT", "1h", since_ms=None, limit=5, now_ms=2**62)
    with pytest.raises(SymbolNotFound):
        await source.fetch_closed_candles("BTC/USDT", "4h", since_ms=None, limit=5, now_ms=2**62)
    await source.close()


async def test_other_quote_directory_content_is_ignored(tmp_path: Path) -> None:
    data_dir = small_copy(tmp_path, hours=10)
    shutil.copy(data_dir / "1h" / "BTC_USDT-1h.json.gz", data_dir / "1h" / "BTC_BUSD-1h.json.gz")
    (data_dir / "1h" / "notes.txt").write_text("not a candle file")
    markets = await bundled(data_dir=data_dir, warmup=2).load_markets()
    assert [m.symbol for m in markets] == ["BTC/USDT", "ETH/USDT"]
