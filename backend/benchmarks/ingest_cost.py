"""Ingest cost benchmark (not a test): HTTP calls per incremental cycle and the worker's peak memory.

Run from ``backend/``: ``../.venv/bin/python -m benchmarks.ingest_cost --exchange upbit --symbols 100``.
The emulated exchange (``tests/support/emulator``) runs in a child process on 127.0.0.1 so that the measured peak memory
(``ru_maxrss``) is the worker's alone. Symbols beyond the 33 bundled pairs are synthetic names (``S0000``…) whose
candles are the real bundled series of the real pairs re-used round-robin. The worker side is a real
``ExchangeCycle`` with ``CcxtSource`` on a SQLite file: a first cycle (lookback backfill), then two incremental
cycles an hour apart (the second one crossing midnight UTC, when the daily candle closes too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from app.config import BUNDLED_DATA_DIR, Settings
from app.exchange import CcxtSource
from app.storage.db import make_engine, make_session_factory
from app.storage.migrate import upgrade
from app.worker.cycle import ExchangeCycle

HOUR_MS, DAY_MS = 3_600_000, 86_400_000


def real_bases() -> list[str]:
    """The bundled pairs' bases."""
    return sorted(p.name.split("_")[0] for p in (BUNDLED_DATA_DIR / "1h").glob("*_USDT-1h.json.gz"))


def serve(kind: str, count: int) -> None:
    """Child process: serve ``count`` symbols and print the port, then wait for stdin to close."""
    from tests.support.emulator import Emulator, synthetic_bases

    aliases = synthetic_bases(count, real=real_bases())
    emulator = Emulator(kind, list(aliases), aliases=aliases).start()
    print(emulator.port, flush=True)
    sys.stdin.read()
    emulator.stop()


def control(port: int, now_ms: int) -> None:
    """Set the emulator's clock."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/now?ms={now_ms}") as response:
        response.read()


async def measure(kind: str, count: int, port: int, db: Path) -> dict[str, object]:
    """Run the cycles against the emulator on ``port``; returns the figures."""
    from tests.support.emulator import Emulator

    probe = Emulator(kind, ["BTC"])
    midnight_ms = probe.rows("BTC", "1d")[-1][0]  # the last bundled day opens here: clock two hours before it
    now = {"ms": midnight_ms - 2 * HOUR_MS + 10_000}
    control(port, now["ms"])
    options = {"urls": {"api": {"public": f"http://127.0.0.1:{port}" + ("/api/v3" if kind == "binance" else "")}}}
    options.update(timeout=10_000, rateLimit=1)
    url = f"sqlite:///{db}"
    upgrade(url)
    settings = Settings(_env_file=None, database_url=url, market_source="ccxt", exchanges=[kind], universe_size=count)
    engine = make_engine(url)
    calls: list[int] = []
    source = CcxtSource(kind, quote="KRW" if kind == "upbit" else "USDT", options=options, clock_ms=lambda: now["ms"])
    counted = CountingSource(source)
    cycle = ExchangeCycle(source=counted, settings=settings, session_factory=make_session_factory(engine), cache=None)
    started = time.monotonic()
    try:
        for _ in range(3):
            before = counted.http_calls
            outcome = await cycle.run_once()
            calls.append(counted.http_calls - before)
            assert outcome.symbols_total == count and not outcome.errors, outcome.errors
            now["ms"] += HOUR_MS
            control(port, now["ms"])
    finally:
        await source.close()
        engine.dispose()
    return {
        "exchange": kind,
        "symbols": count,
        "http_calls": {"first": calls[0], "incremental_1h": calls[1], "incremental_1h_and_1d": calls[2]},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seconds": round(time.monotonic() - started, 1),
    }


class CountingSource:
    """Counts the ccxt HTTP requests of a ``CcxtSource`` (wraps ccxt's ``fetch``)."""

    def __init__(self, inner: CcxtSource) -> None:
        self.inner, self.http_calls = inner, 0
        exchange = inner._exchange
        original = exchange.fetch

        async def fetch(*args: object, **kwargs: object) -> object:
            self.http_calls += 1
            return await original(*args, **kwargs)

        exchange.fetch = fetch

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def main() -> None:
    """Parse arguments, start the emulator process, measure, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", choices=["upbit", "binance"], default="upbit")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.exchange, args.symbols)
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.ingest_cost",
            "--serve",
            "--exchange",
            args.exchange,
            "--symbols",
            str(args.symbols),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    port = int(child.stdout.readline())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(asyncio.run(measure(args.exchange, args.symbols, port, Path(tmp) / "bench.sqlite3"))))
    finally:
        child.stdin.close()
        child.wait(timeout=10)


if __name__ == "__main__":
    main()
