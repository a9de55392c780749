"""Reading a folder of candle files ``BASE_QUOTE-TF.json`` / ``.json.gz`` (rows ``[open_time_ms, o, h, l, c, v]``).

Invariants: every row is six finite numbers, open times strictly ascending, prices positive; anything else raises
``DataError`` naming the file and the row. Symbols are ``BASE/QUOTE``. The files of a timeframe are found as the
replay source finds them: in ``DIR/<timeframe>/`` (preferred) or directly in ``DIR``.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

from app.domain import Candle, timeframe_ms
from app.errors import UsageError


class DataError(UsageError):
    """The input folder or a file in it cannot be evaluated (the message says why, on one line)."""


def check_timeframe(timeframe: str) -> int:
    """Length of ``timeframe`` in ms, or ``DataError`` for an unknown one."""
    try:
        return timeframe_ms(timeframe)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _candle(row: Any, *, path: Path, number: int) -> Candle:
    if not isinstance(row, list) or len(row) < 6:
        raise DataError(f"{path.name}: row {number} is not [open_time_ms, open, high, low, close, volume]")
    try:
        values = [float(v) for v in row[:6]]
    except (TypeError, ValueError):
        raise DataError(f"{path.name}: row {number} has a non-numeric value") from None
    if not all(math.isfinite(v) for v in values) or min(values[1:5]) <= 0 or values[5] < 0:
        raise DataError(f"{path.name}: row {number} has a non-finite, non-positive price or negative volume")
    return Candle(int(values[0]), values[1], values[2], values[3], values[4], values[5])


def load_file(path: Path) -> list[Candle]:
    """The candles of one file, checked."""
    raw = path.read_bytes()
    try:
        rows = json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path.name}: not a JSON (or gzip JSON) file: {exc}") from None
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{path.name}: expected a non-empty JSON array of candle rows")
    candles = [_candle(row, path=path, number=i) for i, row in enumerate(rows)]
    for i in range(1, len(candles)):
        if candles[i].open_time_ms <= candles[i - 1].open_time_ms:
            raise DataError(f"{path.name}: row {i} is not later than row {i - 1} (rows must ascend by open time)")
    return candles


def _files(folder: Path, timeframe: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith((f"-{timeframe}.json", f"-{timeframe}.json.gz")))


def timeframe_folder(data: Path, *, timeframe: str) -> Path | None:
    """The folder of ``data``'s ``timeframe`` files: ``data/<timeframe>/`` or ``data`` itself; None if neither."""
    for folder in (data / timeframe, data):
        if _files(folder, timeframe):
            return folder
    return None


def load_folder(folder: Path, *, timeframe: str) -> dict[str, list[Candle]]:
    """Symbol -> candles for every ``BASE_QUOTE-<timeframe>.json[.gz]`` file in ``folder``."""
    check_timeframe(timeframe)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such directory")
    files = _files(folder, timeframe)
    if not files:
        raise DataError(f"{folder}: no BASE_QUOTE-{timeframe}.json or .json.gz files")
    out: dict[str, list[Candle]] = {}
    for path in files:
        pair = path.name.split("-")[0]
        if "_" not in pair:
            raise DataError(f"{path.name}: file name must be BASE_QUOTE-{timeframe}.json[.gz]")
        base, quote = pair.split("_", 1)
        out[f"{base}/{quote}"] = load_file(path)
    return out


def load_timeframe(data: Path, *, timeframe: str) -> dict[str, list[Candle]] | None:
    """Symbol -> candles of ``timeframe`` under ``data`` (see ``timeframe_folder``); None when there are no files."""
    if not data.is_dir():
        raise DataError(f"{data}: no such directory")
    folder = timeframe_folder(data, timeframe=timeframe)
    return None if folder is None else load_folder(folder, timeframe=timeframe)
