"""Universe selection: which of an exchange's markets the cycles analyse, refreshed on its own schedule.

Invariants:
- ``select_universe`` is pure: active spot markets in the quote currency, base not matching the exclusion pattern
  (stablecoins, fiat, leveraged tokens), 24h quote volume at least the minimum, listed long enough (when a listing
  date is known per symbol), ranked by 24h quote volume, ties broken by symbol, top ``size``.
- Quote volume: the ticker's, else ``last * base volume``, else one derived from candles (``derived_volumes``).
- ``Universe`` keeps the last selection; a refresh that fails keeps it. The first selection does not depend on the
  tickers call: when it fails, every symbol's volume is derived from its last daily candle. Leaving the universe
  deletes nothing: a symbol's stored candles stay and are extended again if it comes back.
- Listed history is probed once per symbol with one call for the newest daily candles; a symbol found old enough
  is remembered for the life of the process (history only grows). A probe that fails keeps the symbol (its
  collection then records the error) and is repeated at the next refresh.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from app.config import Settings
from app.domain import Candle, Market, Ticker, timeframe_ms
from app.exchange import ExchangeError, MarketSource

log = structlog.get_logger(__name__)

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class UniverseRules:
    """The filters and size of one exchange's universe."""

    quote: str
    size: int
    min_quote_volume: float = 0.0
    min_history_days: int = 0
    exclude_pattern: str | None = None


def rules_from_settings(settings: Settings, exchange: str) -> UniverseRules:
    """The universe rules ``settings`` give ``exchange``."""
    return UniverseRules(
        quote=settings.quote_currency(exchange),
        size=settings.universe_size,
        min_quote_volume=settings.universe_min_quote_volume,
        min_history_days=settings.universe_min_history_days,
        exclude_pattern=settings.universe_exclude_pattern or None,
    )


def quote_volume(ticker: Ticker | None, derived: float | None = None) -> float:
    """A ticker's 24h quote volume, else base volume × last, else ``derived`` (from candles), else 0."""
    if ticker is not None and ticker.quote_volume_24h is not None:
        return ticker.quote_volume_24h
    if ticker is not None and ticker.base_volume_24h is not None:
        return ticker.base_volume_24h * ticker.last
    return derived if derived is not None else 0.0


def candidates(markets: Sequence[Market], *, quote: str, exclude_pattern: str | None) -> list[str]:
    """Symbols of active spot markets in ``quote`` whose base does not match ``exclude_pattern``."""
    excluded = re.compile(exclude_pattern) if exclude_pattern else None
    return [
        m.symbol
        for m in markets
        if m.active and m.spot and m.quote.upper() == quote.upper() and not (excluded and excluded.search(m.base))
    ]


def select_universe(
    markets: Sequence[Market],
    tickers: Mapping[str, Ticker],
    *,
    quote: str,
    size: int,
    min_quote_volume: float = 0.0,
    exclude_pattern: str | None = None,
    derived_volumes: Mapping[str, float] | None = None,
    old_enough: Mapping[str, bool] | None = None,
) -> list[str]:
    """The ``size`` eligible symbols with the highest 24h quote volume (see the module invariants)."""
    derived = derived_volumes or {}
    volumes = {
        s: quote_volume(tickers.get(s), derived.get(s))
        for s in candidates(markets, quote=quote, exclude_pattern=exclude_pattern)
    }
    ranked = sorted(volumes, key=lambda symbol: (-volumes[symbol], symbol))
    kept = [s for s in ranked if volumes[s] >= min_quote_volume and (old_enough or {}).get(s, True)]
    return kept[:size]


class Universe:
    """The last selected universe of one exchange, and how to refresh it from its source."""

    def __init__(self, *, source: MarketSource, rules: UniverseRules, timeframes: Sequence[str]) -> None:
        self.source = source
        self.rules = rules
        self.probe_timeframe = "1d" if "1d" in timeframes else max(timeframes, key=timeframe_ms)
        self.current: list[str] | None = None
        self._old_enough: set[str] = set()
        self._lock = asyncio.Lock()

    async def ensure(self, *, now_ms: int) -> list[str]:
        """The current universe, selecting it first when there is none yet."""
        async with self._lock:
            if self.current is None:
                await self._refresh_locked(now_ms=now_ms)
            assert self.current is not None
            return self.current

    async def refresh(self, *, now_ms: int) -> list[str]:
        """Select again from the exchange's markets and tickers; on an exchange error keep the last selection."""
        async with self._lock:
            try:
                await self._refresh_locked(now_ms=now_ms)
            except ExchangeError as exc:
                if self.current is None:
                    raise
                log.warning("universe_refresh_failed", exchange=self.source.exchange_id, error=str(exc))
            assert self.current is not None
            return self.current

    async def _refresh_locked(self, *, now_ms: int) -> None:
        markets = await self.source.load_markets()
        tickers = await self._tickers(markets)
        derived = await self._derive_volumes(markets, tickers, now_ms=now_ms)
        rules = self.rules
        ranked = select_universe(
            markets,
            tickers,
            quote=rules.quote,
            size=len(markets),
            min_quote_volume=rules.min_quote_volume,
            exclude_pattern=rules.exclude_pattern,
            derived_volumes=derived,
        )
        chosen = await self._with_history(ranked, now_ms=now_ms)
        previous = set(self.current or [])
        self.current = chosen
        log.info(
            "universe_selected",
            exchange=self.source.exchange_id,
            size=len(chosen),
            added=sorted(set(chosen) - previous),
            removed=sorted(previous - set(chosen)),
        )

    async def _tickers(self, markets: Sequence[Market]) -> Mapping[str, Ticker]:
        """The markets' tickers; for the first selection a failed call ranks by volumes derived from candles."""
        try:
            return await self.source.fetch_tickers([m.symbol for m in markets])
        except ExchangeError as exc:
            if self.current is not None:
                raise  # a refresh keeps the last selection
            log.warning("universe_tickers_failed", exchange=self.source.exchange_id, error=str(exc))
            return {}

    async def _derive_volumes(
        self, markets: Sequence[Market], tickers: Mapping[str, Ticker], *, now_ms: int
    ) -> dict[str, float]:
        """Quote volume from the last day of candles for markets whose ticker has no volume."""
        lacking = [
            s
            for s in candidates(markets, quote=self.rules.quote, exclude_pattern=self.rules.exclude_pattern)
            if quote_volume(tickers.get(s), None) == 0.0
        ]
        derived: dict[str, float] = {}
        for symbol in lacking:
            candles = await self._probe(symbol, limit=1, now_ms=now_ms, timeframe="1d")
            if candles:  # the last closed day's Σ close × volume stands in for the 24h quote volume
                derived[symbol] = candles[-1].close * candles[-1].volume
        return derived

    async def _with_history(self, ranked: Sequence[str], *, now_ms: int) -> list[str]:
        """The first ``size`` of ``ranked`` listed at least ``min_history_days`` ago."""
        chosen: list[str] = []
        history_ms = self.rules.min_history_days * DAY_MS
        needed = math.ceil(history_ms / timeframe_ms(self.probe_timeframe))
        for symbol in ranked:
            if len(chosen) >= self.rules.size:
                break
            if needed and symbol not in self._old_enough:
                candles = await self._probe(symbol, limit=needed, now_ms=now_ms, timeframe=self.probe_timeframe)
                if candles is not None and len(candles) < needed:
                    log.debug("universe_too_young", exchange=self.source.exchange_id, symbol=symbol)
                    continue
                if candles is not None:  # a failed probe keeps the symbol for now: its collection reports the error
                    self._old_enough.add(symbol)
            chosen.append(symbol)
        return chosen

    async def _probe(self, symbol: str, *, limit: int, now_ms: int, timeframe: str) -> list[Candle] | None:
        try:
            return await self.source.fetch_closed_candles(symbol, timeframe, since_ms=None, limit=limit, now_ms=now_ms)
        except ExchangeError as exc:
            log.warning("universe_probe_failed", exchange=self.source.exchange_id, symbol=symbol, error=str(exc))
            return None
