"""Collecting one cycle's closed candles, each symbol and timeframe on its own.

Invariants:
- Every (symbol, timeframe) series is fetched and stored independently (at most ``collect_concurrency`` symbols at
  once): whatever goes wrong with one (a ccxt error after its retries, a damaged replay file, a malformed row, an
  unknown symbol) leaves every other series collected, including the symbol's other timeframes. The symbol is left
  out of the run with one line per failed timeframe (``1d: BadData: replay file 1d/ADA_USDT-1d.json.gz: row 3:
  close is the string 'n/a', not a number``) and one ``collect_failed`` event per failed series.
- Data problems are ``ExchangeError`` s (the sources' contract). Anything else raised for one series (a bug, a
  database error) is isolated the same way but logged as ``collect_crashed`` with its traceback.
- Per series only what closed since the last stored candle is fetched; a first collection fetches the lookback,
  and of the analysis timeframe the refit's history. Gaps (missing open times after the last stored candle, before
  and between the fetched ones: ``app.storage.gaps``) are logged as ``candle_gap`` and never filled.
- Candle reads and writes run one at a time (one lock: SQLite), fetches concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from sqlalchemy.orm import Session, sessionmaker

from app.domain import Candle, timeframe_ms
from app.exchange import ExchangeError, MarketSource
from app.storage.gaps import find_gaps
from app.storage.repositories import CandleRepository

log = structlog.get_logger(__name__)


def log_gaps(exchange: str, symbol: str, timeframe: str, *, last_open_ms: int | None, candles: Sequence[Candle]) -> int:
    """Log every run of missing open times before and between ``candles`` (ascending); returns how many."""
    step_ms = timeframe_ms(timeframe)
    start_ms = None if last_open_ms is None else last_open_ms + step_ms
    gaps = find_gaps([candle.open_time_ms for candle in candles], step_ms=step_ms, start_ms=start_ms)
    for gap in gaps:
        log.warning(
            "candle_gap",
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            first_missing_ms=gap.first_missing_ms,
            missing=gap.missing,
        )
    return sum(gap.missing for gap in gaps)


def failure_text(exc: BaseException) -> str:
    """One line for a failure: ``RateLimited: ...`` (the first line of the message)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else '-'}"


class Collector:
    """Fetches and stores one exchange's new closed candles, series by series."""

    def __init__(
        self,
        *,
        source: MarketSource,
        session_factory: sessionmaker[Session],
        timeframes: Sequence[str],
        limits: dict[str, int],
        concurrency: int,
    ) -> None:
        self.source = source
        self.session_factory = session_factory
        self.timeframes = tuple(timeframes)
        self.limits = limits  # timeframe -> most candles one collection fetches
        self.concurrency = concurrency
        self._db_lock = asyncio.Lock()

    @property
    def exchange(self) -> str:
        """The exchange collected."""
        return self.source.exchange_id

    async def collect(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, str]:
        """Fetch and store every symbol's new closed candles; returns symbol → why it is left out (failed series)."""
        semaphore = asyncio.Semaphore(self.concurrency)
        errors: dict[str, str] = {}

        async def collect_symbol(symbol: str) -> None:
            async with semaphore:
                failed = [await self._series_failure(symbol, timeframe, now_ms=now_ms) for timeframe in self.timeframes]
            reasons = [reason for reason in failed if reason is not None]
            if reasons:
                errors[symbol] = "; ".join(reasons)

        await asyncio.gather(*(collect_symbol(symbol) for symbol in symbols))
        return {symbol: errors[symbol] for symbol in symbols if symbol in errors}

    async def _series_failure(self, symbol: str, timeframe: str, *, now_ms: int) -> str | None:
        """Collect one series; None when it went well, else the one-line reason (logged)."""
        try:
            await self._collect_series(symbol, timeframe, now_ms=now_ms)
        except ExchangeError as exc:
            reason = failure_text(exc)
            log.warning("collect_failed", exchange=self.exchange, symbol=symbol, timeframe=timeframe, error=reason)
        except Exception as exc:  # not a data problem: isolated all the same, with its traceback
            reason = failure_text(exc)
            log.exception("collect_crashed", exchange=self.exchange, symbol=symbol, timeframe=timeframe)
        else:
            return None
        return f"{timeframe}: {reason}"

    async def _collect_series(self, symbol: str, timeframe: str, *, now_ms: int) -> None:
        step_ms = timeframe_ms(timeframe)
        async with self._db_lock:
            last_open_ms = await asyncio.to_thread(self._last_open_time_ms, symbol, timeframe)
        since_ms = None if last_open_ms is None else last_open_ms + step_ms
        if since_ms is not None and since_ms + step_ms > now_ms:
            return  # nothing new has closed since the last stored candle
        candles = await self.source.fetch_closed_candles(
            symbol, timeframe, since_ms=since_ms, limit=self.limits[timeframe], now_ms=now_ms
        )
        if candles:
            log_gaps(self.exchange, symbol, timeframe, last_open_ms=last_open_ms, candles=candles)
            async with self._db_lock:
                await asyncio.to_thread(self._store, symbol, timeframe, candles)

    def _last_open_time_ms(self, symbol: str, timeframe: str) -> int | None:
        with self.session_factory() as session:
            return CandleRepository(session).last_open_time_ms(
                exchange=self.exchange, symbol=symbol, timeframe=timeframe
            )

    def _store(self, symbol: str, timeframe: str, candles: Sequence[Candle]) -> None:
        with self.session_factory() as session:
            CandleRepository(session).upsert(
                exchange=self.exchange, symbol=symbol, timeframe=timeframe, candles=candles
            )
            session.commit()
