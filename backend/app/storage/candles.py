"""Candle storage: idempotent upserts of closed candles and causal loads.

Invariants:
- Only closed candles are stored; a row is keyed by (exchange, symbol, timeframe, open_time_ms) and never
  rewritten (a closed candle does not change), so ``upsert`` is INSERT ... ON CONFLICT DO NOTHING.
- ``load`` and ``load_columns`` are causal: they return only candles whose close time (``open_time_ms +
  timeframe_ms``) is at or before ``until_ms``, ascending, the newest ``limit`` per symbol. Missing intervals stay
  missing. The loads are ``app.storage.queries.candles`` (shared with the API), run in the repository's session.
- ``gaps`` reports missing intervals of one symbol by the one gap rule (``app.storage.gaps.find_gaps``).
- The repository flushes, never commits.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain import Candle, timeframe_ms
from app.storage.db import dialect_insert, sql_connection
from app.storage.gaps import Gap, find_gaps
from app.storage.models import CandleModel
from app.storage.queries.candles import COLUMNS_SYMBOLS_PER_QUERY, CandleColumns, CandleReads

__all__ = ["COLUMNS_SYMBOLS_PER_QUERY", "UPSERT_BATCH_ROWS", "CandleColumns", "CandleRepository"]
UPSERT_BATCH_ROWS = 500
_KEY_COLUMNS = ("exchange", "symbol", "timeframe", "open_time_ms")


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
        """``CandleReads.load`` in this session."""
        reads = CandleReads(sql_connection(self._session))
        return reads.load(exchange=exchange, timeframe=timeframe, symbols=symbols, until_ms=until_ms, limit=limit)

    def load_columns(
        self, *, exchange: str, timeframe: str, symbols: Sequence[str], until_ms: int, limit: int
    ) -> dict[str, CandleColumns]:
        """``CandleReads.load_columns`` in this session."""
        reads = CandleReads(sql_connection(self._session))
        return reads.load_columns(
            exchange=exchange, timeframe=timeframe, symbols=symbols, until_ms=until_ms, limit=limit
        )
