"""The bundled real Binance candles (``app/data/binance-spot``): the one loader of the test suite.

Each file is read once per session. Rows ascend by open time (epoch milliseconds, ``[open_ms, open, high, low,
close, volume]`` with the volume in the base currency); ``closed`` keeps only the candles that closed by
``as_of_ms`` (nothing closing later is ever used). Writers produce the same file shape, gzip when the name ends
with ``.gz``.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

from app.config import BUNDLED_DATA_DIR
from app.domain import Candle, timeframe_ms

TIMEFRAMES = ("1h", "1d")
Universe = dict[str, dict[str, list[Candle]]]  # symbol -> timeframe -> candles, ascending


def bundled_file(base: str, timeframe: str) -> Path:
    """The bundled file of ``BASE/USDT`` candles of one timeframe."""
    return BUNDLED_DATA_DIR / timeframe / f"{base}_USDT-{timeframe}.json.gz"


@cache
def bundled_candles(base: str, timeframe: str) -> tuple[Candle, ...]:
    """Every bundled real candle of ``BASE/USDT`` in ``timeframe``, ascending."""
    with gzip.open(bundled_file(base, timeframe), "rt", encoding="utf-8") as handle:
        rows = json.load(handle)
    return tuple(Candle(int(row[0]), *(float(value) for value in row[1:6])) for row in rows)


def bundled_bases(timeframe: str = "1h") -> list[str]:
    """The bases (``BTC``, ``ETH``, …) that have a bundled USDT file in ``timeframe``, sorted."""
    return sorted(path.name.split("_")[0] for path in (BUNDLED_DATA_DIR / timeframe).glob("*_USDT-*.json.gz"))


def closed(base: str, timeframe: str, *, as_of_ms: int) -> tuple[Candle, ...]:
    """The bundled candles of ``BASE/USDT`` whose close time is at or before ``as_of_ms``."""
    step_ms = timeframe_ms(timeframe)
    return tuple(candle for candle in bundled_candles(base, timeframe) if candle.open_time_ms + step_ms <= as_of_ms)


def bundled_universe(*, lookback: int) -> Universe:
    """The newest ``lookback`` 1h and 1d candles of every bundled pair, keyed by symbol and timeframe."""
    return {
        f"{base}/USDT": {timeframe: list(bundled_candles(base, timeframe)[-lookback:]) for timeframe in TIMEFRAMES}
        for base in bundled_bases()
    }


def candle_rows(candles: Iterable[Candle]) -> list[list[float]]:
    """The candles as the rows of a candle file (``[open_ms, open, high, low, close, volume]``)."""
    return [[c.open_time_ms, c.open, c.high, c.low, c.close, c.volume] for c in candles]


def write_candle_file(path: Path, rows: Sequence[Sequence[float]]) -> Path:
    """Write ``rows`` as a candle file at ``path`` (gzip when it ends with ``.gz``); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(rows).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def copy_replay_pairs(root: Path, bases: Sequence[str]) -> Path:
    """A replay folder under ``root`` with the bundled 1h and 1d files of a few real USDT pairs (quicker cycles)."""
    for timeframe in TIMEFRAMES:
        (root / timeframe).mkdir(parents=True, exist_ok=True)
        for base in bases:
            source = bundled_file(base, timeframe)
            shutil.copy(source, root / timeframe / source.name)
    return root
