"""Reading a folder of candle files ``BASE_QUOTE-TF.json`` / ``.json.gz`` (rows ``[open_time_ms, o, h, l, c, v]``).

Invariants: the rows are checked by ``app.candle_data`` (the replay source's and ``dantaro check-data``'s rules: six
finite numbers, open times strictly ascending, prices positive); a bad file raises ``DataError`` naming the file and
its first bad row. Symbols are ``BASE/QUOTE``. The files of a timeframe are found as the replay source finds them:
in ``DIR/<timeframe>/`` (preferred) or directly in ``DIR``.
"""

from __future__ import annotations

from pathlib import Path

from app.candle_data import read_file
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


def load_file(path: Path) -> list[Candle]:
    """The candles of one file, checked by ``app.candle_data`` (``DataError`` with its first problem)."""
    checked = read_file(path)
    if checked.problems:
        raise DataError(checked.problems[0].line())
    return [Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])) for r in checked.rows]


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
