"""Candle storage: idempotent upserts of closed candles and causal loads.

Invariants:
- Only closed candles are stored; a row is keyed by (exchange, symbol, timeframe, open_time_ms) and never
  rewritten (a closed candle does not change), so ``upsert`` is INSERT ... ON CONFLICT DO NOTHING.
- ``load`` and ``load_columns`` are causal: they return only candles whose close time (``open_time_ms +
  timeframe_ms``) is at or before ``until_ms``, ascending, the newest ``limit`` per symbol. Missing intervals stay
  missing. ``load_columns`` returns compact columns (``array.array`` of int64 / float64 built from SQLAlchemy
  Core rows, a few symbols per query; no ORM or ``Candle`` objects): the refit reads hundreds of symbols x
  thousands of candles with it, holding at most one query's rows as Python objects at a time.
- ``gaps`` reports missing intervals of one symbol by the one gap rule (``app.storage.gaps.find_gaps``).
- The repository flushes, never commits.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter

from sqlalchemy import Row, Select, func, select, union_all
from sqlalchemy.orm import Session

from app.domain import Candle, timeframe_ms
from app.storage.db import dialect_insert
from app.storage.gaps import Gap, find_gaps
from app.storage.models import CandleModel

UPSERT_BATCH_ROWS = 500
LOAD_SYMBOLS_PER_QUERY = 100
COLUMNS_SYMBOLS_PER_QUERY = 20  # bounds the Python rows held at once by load_columns
_KEY_COLUMNS = ("exchange", "symbol", "timeframe", "open_time_ms")
CandleRow = Row[str, int, float, float, float, float, float]  # symbol, open_time_ms, open, high, low, close, volume


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


class CandleRepository:
    """Reads and writes the ``candles`` table within the caller's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def upsert(self, *, exchange: str, symbol: str, timeframe: str, candles: Sequence[Candle]) -> int:
        """Insert candles not stored yet (batched); returns how many rows were inserted."""
        if not candles:
            return 0
        self._session.flush()
        # One cached statement, executed with many parameter sets: SQLAlchemy's insertmanyvalues batches them
        # into multi-row INSERT ... ON CONFLICT DO NOTHING ... RETURNING; only inserted rows come back.
        stmt = (
            dialect_insert(self._session, CandleModel)
            .on_conflict_do_nothing(index_elements=list(_KEY_COLUMNS))
            .returning(CandleModel.open_time_ms)
        )
        connection = self._session.connection()
        inserted = 0
        for start in range(0, len(candles), UPSERT_BATCH_ROWS):
            rows = [
                {
                    "exchange": exchange,
                    "symbol": symbol,
                    "timeframe": timeframe,
                    "open_time_ms": candle.open_time_ms,
                    "open": candle.open,
                    "high": candle.high,
                    "low": candle.low,
                    "close": candle.close,
                    "volume": candle.volume,
                }
                for candle in candles[start : start + UPSERT_BATCH_ROWS]
            ]
            inserted += len(connection.execute(stmt, rows).all())
        return inserted

    def last_open_time_ms(self, *, exchange: str, symbol: str, timeframe: str) -> int | None:
        """Open time of the newest stored candle of one symbol, or None."""
        stmt = select(func.max(CandleModel.open_time_ms)).where(
            CandleModel.exchange == exchange, CandleModel.symbol == symbol, CandleModel.timeframe == timeframe
        )
        value = self._session.execute(stmt).scalar_one_or_none()
        return None if value is None else int(value)

    def latest_open_time_ms(self, *, exchange: str, timeframe: str) -> int | None:
        """Open time of the newest stored candle of any symbol on the exchange, or None."""
        stmt = select(func.max(CandleModel.open_time_ms)).where(
            CandleModel.exchange == exchange, CandleModel.timeframe == timeframe
        )
        value = self._session.execute(stmt).scalar_one_or_none()
        return None if value is None else int(value)

    def gaps(
        self, *, exchange: str, symbol: str, timeframe: str, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[Gap]:
        """Missing open times of one symbol in ``[start_ms, end_ms)``; an open bound: the first / last stored."""
        stmt = select(CandleModel.open_time_ms).where(
            CandleModel.exchange == exchange, CandleModel.symbol == symbol, CandleModel.timeframe == timeframe
        )
        if start_ms is not None:
            stmt = stmt.where(CandleModel.open_time_ms >= start_ms)
        if end_ms is not None:
            stmt = stmt.where(CandleModel.open_time_ms < end_ms)
        stored_ms = [int(value) for value in self._session.scalars(stmt.order_by(CandleModel.open_time_ms))]
        return find_gaps(stored_ms, step_ms=timeframe_ms(timeframe), start_ms=start_ms, end_ms=end_ms)

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
        """Every row of ``query`` for ``symbols``, one list per query of ``per_query`` symbols (in no order)."""
        if query.limit <= 0 or not symbols:
            return
        unique = list(dict.fromkeys(symbols))
        for start in range(0, len(unique), per_query):
            parts = [query.branch(symbol) for symbol in unique[start : start + per_query]]
            yield list(self._session.execute(union_all(*parts)))


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

    def branch(self, symbol: str) -> Select[str, int, float, float, float, float, float]:
        """One symbol's rows (a branch of the UNION ALL)."""
        return _newest_candles(
            exchange=self.exchange,
            timeframe=self.timeframe,
            symbol=symbol,
            last_open_ms=self.until_ms - timeframe_ms(self.timeframe),
            limit=self.limit,
        )


def _newest_candles(
    *, exchange: str, timeframe: str, symbol: str, last_open_ms: int, limit: int
) -> Select[str, int, float, float, float, float, float]:
    # Each branch walks the primary-key index backwards from last_open_ms and stops after `limit` rows.
    newest = (
        select(
            CandleModel.symbol,
            CandleModel.open_time_ms,
            CandleModel.open,
            CandleModel.high,
            CandleModel.low,
            CandleModel.close,
            CandleModel.volume,
        )
        .where(
            CandleModel.exchange == exchange,
            CandleModel.symbol == symbol,
            CandleModel.timeframe == timeframe,
            CandleModel.open_time_ms <= last_open_ms,
        )
        .order_by(CandleModel.open_time_ms.desc())
        .limit(limit)
        .subquery()
    )
    return select(
        newest.c.symbol,
        newest.c.open_time_ms,
        newest.c.open,
        newest.c.high,
        newest.c.low,
        newest.c.close,
        newest.c.volume,
    )
