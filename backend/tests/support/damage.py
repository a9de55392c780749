"""Real-world damage to a candle file (``BASE_QUOTE-TF.json[.gz]``), each with the problem ``app.candle_data`` reports.

``DAMAGES`` maps a name to a function that damages the file at ``path`` in place (keeping its name and compression)
and returns the text the problem line holds (after ``<file>: ``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Damage = Callable[[Path], str]


def read_rows(path: Path) -> list[list[Any]]:
    """The rows of a candle file as they are."""
    raw = path.read_bytes()
    rows: list[list[Any]] = json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)
    return rows


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def _write_rows(path: Path, rows: list[list[Any]]) -> None:
    _write(path, json.dumps(rows).encode())


def truncated(path: Path) -> str:
    """Cut the file in half (a gzip file then ends before its end-of-stream marker)."""
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return "truncated gzip file" if path.name.endswith(".gz") else "not a JSON (or gzip JSON) file"


def bad_json(path: Path) -> str:
    """Valid compression, broken JSON: a row without its closing brackets."""
    text = json.dumps(read_rows(path))
    _write(path, text[: len(text) // 2].encode())
    return "not a JSON (or gzip JSON) file: "


def wrong_shape(path: Path) -> str:
    """Row 5 has only four values."""
    rows = read_rows(path)
    rows[5] = rows[5][:4]
    _write_rows(path, rows)
    return "row 5: not a row [open_time_ms, open, high, low, close, volume]"


def string_value(path: Path) -> str:
    """Row 7's close is the string ``n/a``."""
    rows = read_rows(path)
    rows[7][4] = "n/a"
    _write_rows(path, rows)
    return "row 7: close is the string 'n/a', not a number"


def non_finite(path: Path) -> str:
    """Row 3's high is ``Infinity`` (Python's JSON writes it; a strict reader would refuse it)."""
    rows = read_rows(path)
    rows[3][2] = float("inf")
    _write_rows(path, rows)
    return "row 3: high is inf, not a finite number"


def descending(path: Path) -> str:
    """Rows 10 and 11 swapped."""
    rows = read_rows(path)
    rows[10], rows[11] = rows[11], rows[10]
    _write_rows(path, rows)
    return "row 11: open time"


def duplicate(path: Path) -> str:
    """Row 12 repeated right after itself."""
    rows = read_rows(path)
    rows.insert(13, list(rows[12]))
    _write_rows(path, rows)
    return "row 13: duplicate open time"


def empty(path: Path) -> str:
    """An empty JSON array."""
    _write_rows(path, [])
    return "no candle rows"


DAMAGES: dict[str, Damage] = {
    "truncated": truncated,
    "bad_json": bad_json,
    "wrong_shape": wrong_shape,
    "string_value": string_value,
    "non_finite": non_finite,
    "descending": descending,
    "duplicate": duplicate,
    "empty": empty,
}
