"""``dantaro backfill`` as a real process against a loopback Upbit emulation: killed mid-way, then rerun.

The rerun completes what is missing, stores no duplicates and no invented candles (compared exactly with the
emulator's source data, which has a gap), and bad input gets one line and exit status 2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.cli.main import main
from app.domain import Candle, timeframe_ms
from app.storage.db import make_engine, make_session_factory
from app.storage.migrate import upgrade
from app.storage.models import CandleModel
from tests.support.emulator import Emulator
from tests.support.paths import REPO_ROOT

DANTARO = [sys.executable, "-m", "app.cli"]
HOUR_MS = timeframe_ms("1h")
BASES = ["BTC", "ETH", "SOL"]


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emulated = Emulator.live("upbit", BASES, candle_delay_s=0.3).start()
    yield emulated
    emulated.stop()


def env_for(url: str, emulator: Emulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANTARO_")}
    env.update(
        DANTARO_DATABASE_URL=url,
        DANTARO_MARKET_SOURCE="ccxt",
        DANTARO_EXCHANGES="upbit",
        DANTARO_EXCHANGE_OPTIONS=json.dumps({"upbit": emulator.ccxt_options()}),
        DANTARO_LOG_LEVEL="WARNING",
    )
    return env


def stored(url: str, symbol: str) -> list[Candle]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            rows = session.scalars(
                select(CandleModel).where(CandleModel.symbol == symbol).order_by(CandleModel.open_time_ms)
            ).all()
            total = session.scalar(select(func.count()).select_from(CandleModel).where(CandleModel.symbol == symbol))
    finally:
        engine.dispose()
    candles = [Candle(r.open_time_ms, r.open, r.high, r.low, r.close, r.volume) for r in rows]
    assert total == len({c.open_time_ms for c in candles})  # no duplicates
    return candles


def test_backfill_resumes_after_being_killed(tmp_path: Path, emulator: Emulator) -> None:
    url = f"sqlite:///{tmp_path / 'backfill.sqlite3'}"
    upgrade(url)
    gap_ms = emulator.rows("ETH", "1h")[-30][0]
    emulator.gaps.add(("ETH", "1h", gap_ms))
    args = [
        *DANTARO,
        "backfill",
        "--exchange",
        "upbit",
        "--timeframe",
        "1h",
        "--days",
        "20",
        "--symbols",
        "BTC,ETH,SOL",
    ]
    env = env_for(url, emulator)
    process = subprocess.Popen(args, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    first_line = process.stdout.readline()  # plain progress lines (not a TTY): one per committed chunk
    assert first_line.startswith("backfill KRW") or first_line.startswith("backfill BTC/KRW"), first_line
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    process.stdout.close()  # the pipe is a file: left open it is a ResourceWarning (an error in this suite)
    assert process.returncode == -signal.SIGKILL
    assert stored(url, "BTC/KRW") and not stored(url, "SOL/KRW")  # interrupted mid-way
    calls_before = emulator.calls("/v1/candles")
    done = subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert emulator.calls("/v1/candles") - calls_before < 3 * 3  # BTC is not fetched again (only ETH's gap is re-asked)
    now_ms = time.time_ns() // 1_000_000
    for base in BASES:
        have = stored(url, f"{base}/KRW")
        assert have == emulator.closed(base, "1h", since_ms=have[0].open_time_ms)[: len(have)]
        assert len(have) >= 20 * 24 - 2 and have[-1].open_time_ms + 2 * HOUR_MS > now_ms
    assert gap_ms not in {c.open_time_ms for c in stored(url, "ETH/KRW")}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--exchange", "nosuchexchange"], "unknown exchange 'nosuchexchange'"),
        (["--exchange", "upbit", "--timeframe", "3x"], "unknown timeframe '3x'"),
        (["--exchange", "upbit", "--days", "0"], "--days must be positive"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backfill", *extra]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dantaro backfill: {message}")
