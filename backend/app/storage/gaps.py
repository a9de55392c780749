"""Candle gaps per symbol, computed from the stored candles (the ingest never fills them).

Invariants:
- A gap is a run of missing open times strictly between two stored candles of one exchange, symbol and
  timeframe: consecutive stored open times more than one ``timeframe_ms`` apart. Before a symbol's first stored
  candle nothing is a gap (it was not listed, or not collected).
- Times are milliseconds since the Unix epoch (UTC). Read-only: a query, flushes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain import timeframe_ms
from app.storage.models import CandleModel


@dataclass(frozen=True, slots=True)
class CandleGap:
    """Missing candles of one symbol: open times ``first_missing_ms`` .. ``last_missing_ms`` (inclusive)."""

    exchange: str
    symbol: str
    timeframe: str
    first_missing_ms: int
    last_missing_ms: int
    missing: int


def find_gaps(
    session: Session, *, exchange: str, timeframe: str, symbols: list[str] | None = None, since_ms: int | None = None
) -> list[CandleGap]:
    """Every gap in the stored candles of ``exchange`` and ``timeframe``, by symbol then time."""
    step_ms = timeframe_ms(timeframe)
    previous = func.lag(CandleModel.open_time_ms).over(
        partition_by=CandleModel.symbol, order_by=CandleModel.open_time_ms
    )
    inner = select(
        CandleModel.symbol.label("symbol"),
        CandleModel.open_time_ms.label("open_ms"),
        previous.label("previous_ms"),
    ).where(CandleModel.exchange == exchange, CandleModel.timeframe == timeframe)
    if symbols is not None:
        inner = inner.where(CandleModel.symbol.in_(symbols))
    if since_ms is not None:
        inner = inner.where(CandleModel.open_time_ms >= since_ms)
    rows = inner.subquery()
    stmt = (
        select(rows.c.symbol, rows.c.previous_ms, rows.c.open_ms)
        .where(rows.c.previous_ms.is_not(None), rows.c.open_ms - rows.c.previous_ms > step_ms)
        .order_by(rows.c.symbol, rows.c.open_ms)
    )
    return [
        CandleGap(
            exchange=exchange,
            symbol=row.symbol,
            timeframe=timeframe,
            first_missing_ms=int(row.previous_ms) + step_ms,
            last_missing_ms=int(row.open_ms) - step_ms,
            missing=(int(row.open_ms) - int(row.previous_ms)) // step_ms - 1,
        )
        for row in session.execute(stmt)
    ]
