"""A run's 24h statistics: the source's tickers call, or the stored candles when that call fails.

Invariants:
- The tickers call is made once per run for the universe. When it fails after its retries (any ``ExchangeError``),
  the run does not fail: a ``tickers_fallback`` event is logged and every collected symbol's ticker is computed from
  its stored candles of the smallest timeframe closed by the run's ``now_ms`` (``app.domain.ticker_from_candles``:
  last close, change against the close 24 hours earlier, volumes summed over the last 24 hours, quote volume
  approximated by ``sum(close * base volume)``), and the snapshot says ``tickers_source: candles``.
- Otherwise the snapshot says where the source's tickers come from (``MarketSource.tickers_source``: ``exchange``
  for ccxt, ``candles`` for the replay, which derives them the same way by design).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session, sessionmaker

from app.domain import DAY_MS, Ticker, TickersSource, ticker_from_candles, timeframe_ms
from app.exchange import ExchangeError, MarketSource
from app.storage.repositories import CandleRepository
from app.worker.collect import failure_text

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RunTickers:
    """The tickers a run analyses with and where they came from."""

    tickers: dict[str, Ticker]
    source: TickersSource


async def fetch_tickers(source: MarketSource, symbols: Sequence[str]) -> RunTickers | None:
    """The source's tickers of ``symbols``; None (logged ``tickers_fallback``) when the call fails."""
    try:
        return RunTickers(await source.fetch_tickers(symbols), source.tickers_source)
    except ExchangeError as exc:
        log.warning("tickers_fallback", exchange=source.exchange_id, error=failure_text(exc), fallback="candles")
        return None


def stored_tickers(
    session_factory: sessionmaker[Session], *, exchange: str, symbols: Sequence[str], timeframe: str, now_ms: int
) -> RunTickers:
    """Every symbol's ticker from its stored ``timeframe`` candles closed by ``now_ms`` (none without candles)."""
    step_ms = timeframe_ms(timeframe)
    with session_factory() as session:
        loaded = CandleRepository(session).load(
            exchange=exchange, timeframe=timeframe, symbols=symbols, until_ms=now_ms, limit=DAY_MS // step_ms + 1
        )
    tickers = {
        symbol: ticker_from_candles(symbol, candles, step_ms=step_ms, now_ms=now_ms)
        for symbol, candles in loaded.items()
    }
    return RunTickers({s: t for s, t in tickers.items() if t is not None}, TickersSource.CANDLES)
