"""``dantaro backfill``: fetch a span of closed candles for chosen symbols (or the universe) into the database.

Invariants:
- Idempotent: candles are upserted; running it twice stores the same rows.
- Resumable: each symbol's missing open times in the span (``CandleRepository.gaps``, the one gap rule of
  ``app.storage.gaps``, on the grid of the span's start) are fetched in ascending chunks, and every chunk is
  committed before the next, so a rerun after an interruption continues from what is stored. Gaps at the
  exchange (no candle for an interval) are asked for again and stay gaps.
- Only closed candles (``open_time_ms + timeframe_ms <= now_ms``) are stored; nothing is invented.
- Progress: a bar on a terminal, plain lines otherwise. Bad input raises ``UsageError`` (the CLI
  prints one line and exits 2).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

import structlog
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.domain import Candle, symbol_candidates, timeframe_ms
from app.errors import UsageError
from app.exchange import CcxtSource, ExchangeError, MarketSource, build_source, supported_exchange_ids
from app.exchange.factory import retry_policy
from app.storage.db import make_engine, make_session_factory
from app.storage.gaps import Gap
from app.storage.migrate import require_head
from app.storage.repositories import CandleRepository
from app.worker.universe import Universe, rules_from_settings

log = structlog.get_logger(__name__)

DAY_MS = 86_400_000
CHUNK_CANDLES = 1000


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    """What to backfill: one exchange and timeframe, ``days`` back from now, the given symbols or the universe."""

    exchange: str
    timeframe: str
    days: int
    bases: tuple[str, ...] = ()


class Progress:
    """A progress bar on a terminal, plain lines elsewhere."""

    def __init__(
        self, total: int, *, stream: TextIO = sys.stdout, title: str = "backfill", unit: str = "candle slots"
    ) -> None:
        self.total, self.done, self.stream = max(total, 1), 0, stream
        self.title, self.unit = title, unit
        self.tty = stream.isatty()

    def advance(self, count: int, *, label: str) -> None:
        """Record ``count`` more items (candle slots, runs) handled for ``label``."""
        self.done = min(self.total, self.done + count)
        if self.tty:
            filled = int(30 * self.done / self.total)
            bar = "#" * filled + "-" * (30 - filled)
            self.stream.write(f"\r[{bar}] {100 * self.done // self.total:3d}% {self.done}/{self.total} {label:<24}")
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"{self.title} {label}: {self.done}/{self.total} {self.unit}\n")
        self.stream.flush()


def validate(request: BackfillRequest) -> None:
    """Raise ``UsageError`` for an unknown exchange, a bad timeframe or a non-positive span."""
    if request.exchange not in supported_exchange_ids():
        raise UsageError(f"unknown exchange {request.exchange!r} (any ccxt exchange id, e.g. upbit, binance)")
    try:
        timeframe_ms(request.timeframe)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if request.days <= 0:
        raise UsageError(f"--days must be positive, not {request.days}")


def make_source(settings: Settings, request: BackfillRequest) -> MarketSource:
    """The source to backfill from: live ccxt (only this timeframe), or the replay."""
    if settings.market_source != "ccxt":
        return build_source(settings, request.exchange, resume_from_ms=None)
    try:
        return CcxtSource(
            request.exchange,
            quote=settings.quote_currency(request.exchange),
            options=settings.exchange_options.get(request.exchange),
            timeframes=[request.timeframe],
            retry_policy=retry_policy(settings, cycle_budget=False),
        )
    except ExchangeError as exc:  # e.g. a timeframe the exchange does not offer
        raise UsageError(str(exc)) from None


async def resolve_symbols(source: MarketSource, settings: Settings, request: BackfillRequest, now_ms: int) -> list[str]:
    """The unified symbols of ``request.bases`` on the exchange, or its universe when none are given."""
    if not request.bases:
        universe = Universe(source=source, rules=rules_from_settings(settings, request.exchange), timeframes=["1d"])
        return await universe.ensure(now_ms=now_ms)
    listed = {m.symbol for m in await source.load_markets()}
    symbols = []
    for base in request.bases:
        found = [s for s in symbol_candidates(base, default_quote=source.quote) if s in listed]
        if not found:
            raise UsageError(f"{request.exchange} lists no {base} market in {source.quote}")
        symbols.append(found[0])
    return symbols


class Backfill:
    """Fills one exchange's candles of one timeframe over a span, chunk by committed chunk."""

    def __init__(self, *, source: MarketSource, session_factory: sessionmaker[Session], request: BackfillRequest):
        self.source, self.session_factory, self.request = source, session_factory, request
        self.step_ms = timeframe_ms(request.timeframe)

    def missing(self, symbol: str, *, start_ms: int, end_ms: int) -> list[Gap]:
        """The gaps of ``symbol``'s stored candles in ``[start_ms, end_ms)``."""
        with self.session_factory() as session:
            return CandleRepository(session).gaps(
                exchange=self.request.exchange,
                symbol=symbol,
                timeframe=self.request.timeframe,
                start_ms=start_ms,
                end_ms=end_ms,
            )

    async def fill(self, symbol: str, gaps: Sequence[Gap], *, now_ms: int, progress: Progress) -> int:
        """Fetch and commit every gap of ``symbol`` in chunks; returns how many candles were stored."""
        stored = 0
        for gap in gaps:
            for offset in range(0, gap.missing, CHUNK_CANDLES):
                since_ms = gap.first_missing_ms + offset * self.step_ms
                size = min(CHUNK_CANDLES, gap.missing - offset)
                until_ms = since_ms + size * self.step_ms
                candles = await self.source.fetch_closed_candles(
                    symbol, self.request.timeframe, since_ms=since_ms, limit=size, now_ms=now_ms
                )
                inside = [c for c in candles if c.open_time_ms < until_ms]
                await asyncio.to_thread(self._store, symbol, inside)
                stored += len(inside)
                progress.advance(size, label=symbol)
        return stored

    def _store(self, symbol: str, candles: Sequence[Candle]) -> None:
        if not candles:
            return
        with self.session_factory() as session:
            CandleRepository(session).upsert(
                exchange=self.request.exchange, symbol=symbol, timeframe=self.request.timeframe, candles=candles
            )
            session.commit()


async def run_backfill(settings: Settings, request: BackfillRequest, *, stream: TextIO = sys.stdout) -> int:
    """Backfill per ``request``; returns how many candles were stored (new or refreshed)."""
    await asyncio.to_thread(require_head, settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    source = make_source(settings, request)
    try:
        now_ms = await source.start_cycle()
        symbols = await resolve_symbols(source, settings, request, now_ms)
        job = Backfill(source=source, session_factory=make_session_factory(engine), request=request)
        end_ms = (now_ms // job.step_ms) * job.step_ms  # the forming candle's open: excluded
        start_ms = end_ms - (request.days * DAY_MS // job.step_ms) * job.step_ms
        plan = {s: job.missing(s, start_ms=start_ms, end_ms=end_ms) for s in symbols}
        progress = Progress(sum(gap.missing for gaps in plan.values() for gap in gaps), stream=stream)
        stored = 0
        for symbol, gaps in plan.items():
            stored += await job.fill(symbol, gaps, now_ms=now_ms, progress=progress)
        log.info("backfill_finished", exchange=request.exchange, symbols=len(symbols), stored=stored)
        stream.write(f"backfill {request.exchange} {request.timeframe}: {len(symbols)} symbols, {stored} candles\n")
        return stored
    finally:
        await source.close()
        engine.dispose()
