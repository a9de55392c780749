"""The ``MarketSource`` protocol every market-data source implements, and helpers shared by the implementations.

Invariants:
- Times are milliseconds since the Unix epoch (UTC); a candle closes at ``open_time_ms + timeframe_ms``.
- Causality: a source never returns a candle that closes after the ``now_ms`` the caller passes.
- Candles come back ascending by open time, without duplicates; sources return domain objects only and raise
  only ``app.exchange.errors`` types (``BadData`` for a symbol's unusable data: a damaged file, a malformed row).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from app.domain import Candle, Market, Ticker, TickersSource, timeframe_ms


@runtime_checkable
class MarketSource(Protocol):
    """Where markets, tickers and closed candles of one exchange come from (live ccxt or replayed history)."""

    exchange_id: str
    quote: str
    tickers_source: TickersSource  # where ``fetch_tickers``' 24h statistics come from (the replay: candles)

    async def start_cycle(self, *, stored_until_ms: int | None = None) -> int:
        """The ``now_ms`` this cycle observes; the replay source advances its clock here.

        ``stored_until_ms`` is the close time of the newest stored candle of the smallest timeframe (None when
        nothing is stored): the replay derives its clock from it; live sources ignore it.
        """
        ...

    async def load_markets(self) -> list[Market]:
        """Active spot markets quoted in ``self.quote``."""
        ...

    async def fetch_tickers(self, symbols: Sequence[str]) -> dict[str, Ticker]:
        """24-hour tickers of the given symbols, keyed by symbol (unknown symbols are left out)."""
        ...

    async def fetch_closed_candles(
        self, symbol: str, timeframe: str, *, since_ms: int | None, limit: int, now_ms: int
    ) -> list[Candle]:
        """Closed candles, ascending, ``open_time_ms >= since_ms`` when given, at most ``limit``.

        Only candles with ``open_time_ms + timeframe_ms <= now_ms``; the oldest ``limit`` from ``since_ms`` when
        it is given, else the newest ``limit``.
        """
        ...

    async def close(self) -> None:
        """Release connections and memory; the source is not used afterwards."""
        ...


def closed_only(candles: Iterable[Candle], *, timeframe: str, now_ms: int) -> list[Candle]:
    """Candles closed at or before ``now_ms``, deduplicated by open time (last one wins), ascending."""
    step_ms = timeframe_ms(timeframe)
    by_open: dict[int, Candle] = {}
    for candle in candles:
        if candle.open_time_ms + step_ms <= now_ms:
            by_open[candle.open_time_ms] = candle
    return [by_open[open_ms] for open_ms in sorted(by_open)]


def window(candles: Sequence[Candle], *, since_ms: int | None, limit: int) -> list[Candle]:
    """From ascending candles: the first ``limit`` at or after ``since_ms``, or the last ``limit`` without it."""
    if limit <= 0:
        return []
    if since_ms is None:
        return list(candles[-limit:])
    return [c for c in candles if c.open_time_ms >= since_ms][:limit]
