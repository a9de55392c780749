"""Causal candle loads: the newest ``limit`` closed candles per symbol, as ``Candle`` lists or compact columns.

Invariants:
- Only candles whose close time (``open_time_ms + timeframe_ms``) is at or before ``until_ms`` are returned,
  ascending, the newest ``limit`` per symbol; every asked symbol is a key. Missing intervals stay missing.
- One statement per batch of symbols: a UNION ALL of one branch per symbol, each walking the primary-key index
  backwards from the last allowed open time and stopping after ``limit`` rows.
- ``load_columns`` builds ``array.array`` buffers (int64 / float64) a few symbols per statement, so the refit reading
  hundreds of symbols x thousands of candles holds at most one statement's rows as Python objects at a time.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

from app.domain import Candle, timeframe_ms
from app.storage.sql import SqlConnection

LOAD_SYMBOLS_PER_QUERY = 100
COLUMNS_SYMBOLS_PER_QUERY = 20  # bounds the Python rows held at once by load_columns
CandleRow = tuple[str, int, float, float, float, float, float]  # symbol, open_time_ms, open, high, low, close, volume
_BRANCH = (
    "SELECT * FROM (SELECT symbol, open_time_ms, open, high, low, close, volume FROM candles"
    " WHERE exchange = :exchange AND timeframe = :timeframe AND symbol = :symbol{n}"
    " AND open_time_ms <= :last_open_ms ORDER BY open_time_ms DESC LIMIT :limit) AS newest{n}"
)


@dataclass(frozen=True, slots=True)
class CandleColumns:
    """One symbol's stored candles as columns (int64 / float64 buffers), ascending by open time (epoch ms)."""

    open_time_ms: array[int] = field(default_factory=lambda: array("q"))
    open: array[float] = field(default_factory=lambda: array("d"))
    high: array[float] = field(default_factory=lambda: array("d"))
    low: array[float] = field(default_factory=lambda: array("d"))
    close: array[float] = field(default_factory=lambda: array("d"))
    volume: array[float] = field(default_factory=lambda: array("d"))

    def __len__(self) -> int:
        return len(self.open_time_ms)


class CandleReads:
    """Loads candles on one connection."""

    def __init__(self, conn: SqlConnection) -> None:
        self._conn = conn

    def load(
        self, *, exchange: str, timeframe: str, symbols: Sequence[str], until_ms: int, limit: int
    ) -> dict[str, list[Candle]]:
        """The newest ``limit`` candles closed by ``until_ms`` per symbol, ascending; every symbol is a key."""
        result: dict[str, list[Candle]] = {symbol: [] for symbol in symbols}
        query = _Newest(exchange=exchange, timeframe=timeframe, until_ms=until_ms, limit=limit)
        for rows in self._batches(query, symbols, per_query=LOAD_SYMBOLS_PER_QUERY):
            for row in rows:
                result[row[0]].append(Candle(*row[1:]))
        for candles in result.values():
            candles.sort(key=lambda candle: candle.open_time_ms)
        return result

    def load_columns(
        self, *, exchange: str, timeframe: str, symbols: Sequence[str], until_ms: int, limit: int
    ) -> dict[str, CandleColumns]:
        """``load`` as compact columns per symbol (every symbol is a key; empty columns when nothing is stored)."""
        result = {symbol: CandleColumns() for symbol in symbols}
        query = _Newest(exchange=exchange, timeframe=timeframe, until_ms=until_ms, limit=limit)
        for rows in self._batches(query, symbols, per_query=COLUMNS_SYMBOLS_PER_QUERY):
            rows.sort(key=itemgetter(0, 1))  # a batch holds every row of its symbols
            for symbol, own in groupby(rows, key=itemgetter(0)):
                result[symbol] = _columns(list(own))
        return result

    def _batches(self, query: _Newest, symbols: Sequence[str], *, per_query: int) -> Iterator[list[CandleRow]]:
        """Every row of ``query`` for ``symbols``, one list per statement of ``per_query`` symbols (in no order)."""
        if query.limit <= 0 or not symbols:
            return
        unique = list(dict.fromkeys(symbols))
        for start in range(0, len(unique), per_query):
            batch = unique[start : start + per_query]
            statement = " UNION ALL ".join(_BRANCH.format(n=n) for n in range(len(batch)))
            params: dict[str, Any] = {f"symbol{n}": symbol for n, symbol in enumerate(batch)}
            yield self._conn.tuples(statement, **params, **query.params())


def _columns(rows: Sequence[CandleRow]) -> CandleColumns:
    return CandleColumns(
        array("q", map(itemgetter(1), rows)),
        *(array("d", map(itemgetter(k), rows)) for k in range(2, 7)),
    )


@dataclass(frozen=True, slots=True)
class _Newest:
    """The newest ``limit`` candles of a series closed by ``until_ms``."""

    exchange: str
    timeframe: str
    until_ms: int
    limit: int

    def params(self) -> dict[str, Any]:
        """The parameters every branch shares."""
        last_open_ms = self.until_ms - timeframe_ms(self.timeframe)
        return {
            "exchange": self.exchange,
            "timeframe": self.timeframe,
            "last_open_ms": last_open_ms,
            "limit": self.limit,
        }
