"""Candle files ``BASE_QUOTE-TF.json[.gz]``: finding them, reading them and checking every row — the one implementation
behind the replay source, ``dantaro check-data``, the worker's start check, ``dantaro evaluate`` and the ccxt rows.

Invariants:
- A file holds one JSON array of rows ``[open_time_ms, open, high, low, close, base_volume]`` (further columns are
  ignored). A usable row is a list of at least six JSON numbers (not strings, booleans or null), all finite, the
  open time a whole number of milliseconds in ``[0, 2**53)``, prices above 0, the volume at least 0; open times
  strictly ascend (no duplicate).
- ``read_file`` never raises for what a file holds: an unreadable, truncated or non-JSON file, a wrong shape and
  every bad row are ``Problem`` s (file, row number from 0 or None, what is wrong: one line each; at most
  ``MAX_ROW_PROBLEMS`` rows per file, then one line counting the rest). A file with any problem gives no rows.
- Files are found as the replay reads them (``find_files``): in ``DIR/<timeframe>/`` (preferred) or ``DIR``, a
  ``.json.gz`` preferred over a ``.json`` of the same pair. Problems name the file relative to ``DIR``.

Imports only the standard library and ``app.domain``.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.domain import timeframe_ms

COLUMNS = ("open time", "open", "high", "low", "close", "volume")
ROW_SHAPE = "[open_time_ms, open, high, low, close, volume]"
MAX_ROW_PROBLEMS = 10
MAX_OPEN_TIME_MS = 2**53
FILE_RE = re.compile(r"^([A-Z0-9]+)_([A-Z0-9]+)-(\w+)\.json(\.gz)?$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a candle file: ``row`` (from 0) is None for the file as a whole."""

    file: str
    what: str
    row: int | None = None

    def line(self) -> str:
        """``1h/ADA_USDT-1h.json.gz: row 12: close is the string 'n/a', not a number``."""
        return f"{self.file}: {self.what}" if self.row is None else f"{self.file}: row {self.row}: {self.what}"


@dataclass(frozen=True, slots=True)
class FileRows:
    """The checked rows of one file (empty when it has a problem) and its problems."""

    rows: list[Sequence[Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def reason(self) -> str:
        """The file's problems as one line: the first, and how many more."""
        first = self.problems[0].line()
        more = len(self.problems) - 1
        return first if more == 0 else f"{first} (and {more} more: see dantaro check-data)"


def find_files(data_dir: Path, *, timeframe: str, quote: str | None = None) -> dict[str, Path]:
    """Symbol (``BASE/QUOTE``) → file for every ``BASE_QUOTE-TF.json[.gz]`` of this timeframe (any quote if None)."""
    found: dict[str, Path] = {}
    for folder in (data_dir, data_dir / timeframe):  # the timeframe folder wins
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir(), key=lambda p: (p.name.endswith(".gz"), p.name)):
            match = FILE_RE.match(path.name)
            if match and match.group(3) == timeframe and (quote is None or match.group(2) == quote.upper()):
                found[f"{match.group(1)}/{match.group(2)}"] = path
    return found


def shown_name(path: Path, data_dir: Path | None) -> str:
    """``path`` relative to ``data_dir`` when it lies under it, else its name."""
    if data_dir is not None and path.is_relative_to(data_dir):
        return str(path.relative_to(data_dir))
    return path.name


def read_file(path: Path, *, data_dir: Path | None = None) -> FileRows:
    """Every row of one candle file, checked (see the module invariants); problems instead of exceptions."""
    name = shown_name(path, data_dir)
    loaded, problem = _load_json(path)
    if problem is not None:
        return FileRows(problems=[Problem(name, problem)])
    if not isinstance(loaded, list):
        return FileRows(problems=[Problem(name, f"expected a JSON array of candle rows, found {_kind(loaded)}")])
    if not loaded:
        return FileRows(problems=[Problem(name, "no candle rows (an empty JSON array)")])
    problems = rows_problems(loaded, file=name)
    return FileRows(problems=problems) if problems else FileRows(rows=loaded)


def _load_json(path: Path) -> tuple[Any, str | None]:
    """The decoded JSON of a file (gzip when named ``.gz``), or why it cannot be read."""
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if path.name.endswith(".gz") else raw
        return json.loads(data), None
    except EOFError as exc:
        return None, f"truncated gzip file ({exc})"
    except gzip.BadGzipFile as exc:
        return None, f"not a gzip file ({exc})"
    except OSError as exc:
        return None, f"cannot be read ({type(exc).__name__}: {exc.strerror or exc})"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        return None, f"not a JSON (or gzip JSON) file: {exc}"


def rows_problems(rows: Sequence[Any], *, file: str) -> list[Problem]:
    """The problems of ``rows`` (bad values, then order), at most ``MAX_ROW_PROBLEMS`` plus one counting the rest."""
    problems: list[Problem] = []
    count = 0
    previous: tuple[int, int] | None = None  # (row number, open time) of the last good row
    for number, row in enumerate(rows):
        what = row_problem(row)
        if what is None and previous is not None:
            what = _order_problem(int(row[0]), previous)
        if what is None:
            previous = (number, int(row[0]))
            continue
        count += 1
        if count <= MAX_ROW_PROBLEMS:
            problems.append(Problem(file, what, row=number))
    if count > MAX_ROW_PROBLEMS:
        problems.append(Problem(file, f"{count - MAX_ROW_PROBLEMS} more rows with problems"))
    return problems


def row_problem(row: Any) -> str | None:
    """What is wrong with one row on its own, or None (see the module invariants)."""
    if not isinstance(row, list | tuple) or len(row) < len(COLUMNS):
        return f"not a row {ROW_SHAPE}: {_short(row)}"
    return _number_problem(row) or _range_problem(row)


def _number_problem(row: Sequence[Any]) -> str | None:
    for column, value in zip(COLUMNS, row, strict=False):
        if type(value) is not float and type(value) is not int:
            return f"{column} is {_kind(value)}, not a number"
        if not math.isfinite(value):
            return f"{column} is {value}, not a finite number"
    return None


def _range_problem(row: Sequence[Any]) -> str | None:
    open_ms = row[0]
    if open_ms != int(open_ms) or not 0 <= open_ms < MAX_OPEN_TIME_MS:
        return f"open time {open_ms} is not a whole number of milliseconds since 1970"
    price = min(row[1:5])
    if price <= 0:
        return f"{COLUMNS[1 + list(row[1:5]).index(price)]} is {price}, not a positive price"
    if row[5] < 0:
        return f"volume is {row[5]}, negative"
    return None


def _order_problem(open_ms: int, previous: tuple[int, int]) -> str | None:
    number, previous_ms = previous
    if open_ms == previous_ms:
        return f"duplicate open time {open_ms} (row {number} has it too)"
    if open_ms < previous_ms:
        return f"open time {open_ms} is before row {number}'s (rows must ascend by open time)"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {_short(value)}"
    if isinstance(value, dict):
        return "an object"
    return "an array" if isinstance(value, list) else type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_folder(data_dir: Path, *, timeframes: Sequence[str]) -> tuple[list[Problem], int]:
    """Every problem of the candle files of ``timeframes`` under ``data_dir`` (all quotes), and how many files were
    read: each file's own problems, a timeframe without files, a pair missing a timeframe the others have."""
    for timeframe in timeframes:
        timeframe_ms(timeframe)  # ValueError for an unknown timeframe
    problems: list[Problem] = []
    found = {tf: find_files(data_dir, timeframe=tf) for tf in timeframes}
    for timeframe, files in found.items():
        if not files:
            problems.append(Problem(f"{timeframe}/", f"no BASE_QUOTE-{timeframe}.json[.gz] files"))
        for path in files.values():
            problems.extend(read_file(path, data_dir=data_dir).problems)
    pairs = sorted({symbol for files in found.values() for symbol in files})
    for symbol in pairs:
        have = [tf for tf in timeframes if symbol in found[tf]]
        for timeframe in (tf for tf in timeframes if found[tf] and tf not in have):
            name = f"{timeframe}/{symbol.replace('/', '_')}-{timeframe}.json.gz"
            problems.append(Problem(name, f"missing: {symbol} has {', '.join(have)} candles but no {timeframe} file"))
    return problems, sum(len(files) for files in found.values())


def format_report(problems: Sequence[Problem], *, files: int, data_dir: Path) -> str:
    """The report ``dantaro check-data`` prints: a summary line, then one line per problem."""
    if not problems:
        return f"{data_dir}: {files} candle files, no problems"
    count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
    lines = [f"{data_dir}: {count} ({files} candle files read)"]
    return "\n".join([*lines, *(f"  {p.line()}" for p in problems)])
