"""Plain-text tables for listing commands: columns padded to their widest cell, the last one left as it is."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


def when(value: datetime | None) -> str:
    """``2026-01-02T03:04:05Z``, or ``-`` for none."""
    return "-" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def aligned(table: Sequence[Sequence[str]]) -> list[str]:
    """One line per row (header first), every column but the last padded to its widest cell."""
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[-1]]) for line in table]
