"""A ``MarketSource`` over a live exchange through ``ccxt.async_support``.

Invariants:
- One ccxt instance per source, created with ``enableRateLimit=True`` and the configured options deep-merged into
  its constructor config; ``close()`` always closes it.
- Only closed candles leave this module (``closed_only`` against the caller's ``now_ms``), ascending and deduplicated
  whatever order or page size the exchange uses; pages never exceed the exchange's own per-call cap.
- Every ccxt exception is translated by ``translate_ccxt_error`` (messages redacted); ccxt objects never escape.
- Option values may hold credentials: only option keys are logged.
- Every HTTP response is seen by our hook on ccxt's ``handle_errors`` before ccxt's own: it files the budget the
  exchange reports (``CallGate.observe``) and raises our error when ``classify_response`` recognises a failure by
  its HTTP status or the exchange's documented codes, whatever ccxt would make of the body.
- Every call passes the call gate (``app.exchange.pacing``: nothing while the exchange bans this IP, no more than
  its reported budget) and ``call_with_retries`` (``app.exchange.retry``): rate limits, 429 (Retry-After), 5xx and
  timeouts are retried with jittered backoff a bounded number of times, on top of ccxt's own rate limiter, within
  the retry budget each ``start_cycle()`` opens; a ban is waited out by the gate (capped). A malformed candle row
  raises ``BadData`` (not retried).
- ``tickers_source`` is ``exchange``: tickers are the exchange's own 24h statistics.
- Exchange quirks are data (``app.exchange.quirks``): constructor defaults, ``SINCE_AS_TO`` (Bithumb's ccxt
  ``fetch_ohlcv`` ignores ``since``: the page end is sent as Upbit-style ``to``), page caps, error codes, budget
  headers.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import structlog

from app.candle_data import row_problem
from app.domain import Candle, Market, Ticker, TickersSource, timeframe_ms
from app.exchange.classify import classify_response
from app.exchange.errors import BadData, Banned, ExchangeError, translate_ccxt_error
from app.exchange.pacing import CallGate
from app.exchange.quirks import BUDGET_HEADERS, EXCHANGE_DEFAULTS, PAGE_LIMITS, SINCE_AS_TO
from app.exchange.retry import Random, RetryBudget, RetryPolicy, Sleep, call_with_retries
from app.exchange.source import closed_only, window

log = structlog.get_logger(__name__)

ExchangeFactory = Callable[[dict[str, Any]], Any]
"""Builds a ccxt async exchange instance from its constructor config (the test seam)."""

_FALLBACK_PAGE_LIMIT = 100
_MARKETS_TTL_S = 3600.0
_CREDENTIAL_KEYS = ("apiKey", "secret", "password", "uid", "privateKey", "walletAddress", "token")
# The ccxt method a task is calling: the response hook files the budget a response reports under it.
_CURRENT_CALL: ContextVar[str] = ContextVar("dantaro_exchange_call", default="")


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch, now."""
    return time.time_ns() // 1_000_000


def supported_exchange_ids() -> frozenset[str]:
    """Every exchange id ccxt supports."""
    return frozenset(ccxt_async.exchanges)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``override`` merged in, recursing into nested mappings."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def exchange_config(exchange_id: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ccxt constructor config: our per-exchange defaults, then ``options``; rate limiting always on."""
    config = deep_merge(EXCHANGE_DEFAULTS.get(exchange_id, {}), options or {})
    config["enableRateLimit"] = True
    return config


def ccxt_factory(exchange_id: str) -> ExchangeFactory:
    """The ccxt async exchange class for ``exchange_id``; raises ``ExchangeError`` when ccxt has none."""
    exchange_class = getattr(ccxt_async, exchange_id, None)
    if exchange_id not in ccxt_async.exchanges or exchange_class is None:
        raise ExchangeError(f"ccxt does not support exchange {exchange_id!r}")
    factory: ExchangeFactory = exchange_class
    return factory


def to_candle(row: Sequence[Any]) -> Candle | None:
    """A ``Candle`` from a ccxt OHLCV row, ``None`` when any field is missing; ``BadData`` for a malformed one
    (``app.candle_data.row_problem``: a non-numeric or non-finite value, a non-positive price)."""
    if len(row) < 6 or any(value is None for value in row[:6]):
        return None
    problem = row_problem(list(row[:6]))
    if problem is not None:
        raise BadData(f"malformed candle row from the exchange: {problem}")
    return Candle(
        open_time_ms=int(row[0]),
        open=float(row[1]),
        high=float(row[2]),
        low=float(row[3]),
        close=float(row[4]),
        volume=float(row[5]),
    )


def to_ticker(symbol: str, raw: Mapping[str, Any], *, now_ms: int) -> Ticker | None:
    """A ``Ticker`` from a ccxt ticker dict, ``None`` without a last price; missing volumes stay ``None``."""
    last = raw.get("last") if raw.get("last") is not None else raw.get("close")
    if last is None:
        return None

    def optional(key: str) -> float | None:
        value = raw.get(key)
        return None if value is None else float(value)

    timestamp = raw.get("timestamp")
    return Ticker(
        symbol=symbol,
        last=float(last),
        timestamp_ms=int(timestamp) if timestamp is not None else now_ms,
        change_24h_pct=optional("percentage"),
        base_volume_24h=optional("baseVolume"),
        quote_volume_24h=optional("quoteVolume"),
    )


class CcxtSource:
    """Markets, tickers and closed candles of one live exchange."""

    tickers_source = TickersSource.EXCHANGE

    def __init__(
        self,
        exchange_id: str,
        *,
        quote: str,
        options: Mapping[str, Any] | None = None,
        timeframes: Sequence[str] = (),
        exchange_factory: ExchangeFactory | None = None,
        retry_policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rand: Random = random.random,
        clock_ms: Callable[[], int] | None = None,
        wall_clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.exchange_id = exchange_id
        self.retry_policy = retry_policy or RetryPolicy()
        self._budget = RetryBudget(self.retry_policy.cycle_budget_s)
        self._sleep, self._rand = sleep, rand
        self._clock_ms = clock_ms or wall_clock_ms
        self.quote = quote.upper()
        config = exchange_config(exchange_id, options)
        self._secrets = tuple(str(config[key]) for key in _CREDENTIAL_KEYS if config.get(key))
        self._exchange = (exchange_factory or ccxt_factory(exchange_id))(config)
        self._wall_clock_s = wall_clock_s
        self._gate = CallGate(
            exchange_id,
            budget=BUDGET_HEADERS.get(exchange_id),
            max_ban_wait_s=self.retry_policy.ban_max_wait_s,
            default_ban_s=self.retry_policy.max_delay_s,
            clock_s=wall_clock_s,
            sleep=sleep,
        )
        self._install_response_hook()
        self._markets_loaded_at_s: float | None = None
        self._closed = False
        supported = getattr(self._exchange, "timeframes", None) or {}
        unsupported = [tf for tf in timeframes if tf not in supported]
        if unsupported:
            raise ExchangeError(f"{exchange_id} has no candles for timeframes {unsupported}")
        log.info("ccxt_source_created", exchange=exchange_id, quote=self.quote, option_keys=sorted(options or {}))

    async def start_cycle(self, *, stored_until_ms: int | None = None) -> int:
        """The current time in milliseconds (the wall clock unless a ``clock_ms`` seam was given); opens the cycle's
        retry budget (``RetryPolicy.cycle_budget_s``).

        ``stored_until_ms`` is ignored: a live exchange's clock is the wall clock.
        """
        self._budget = RetryBudget(self.retry_policy.cycle_budget_s)
        return self._clock_ms()

    async def load_markets(self) -> list[Market]:
        """Active spot markets quoted in ``self.quote`` (reloaded from the exchange at most hourly)."""
        loaded_at = self._markets_loaded_at_s
        reload = loaded_at is not None and time.monotonic() - loaded_at > _MARKETS_TTL_S
        raw: Mapping[str, Mapping[str, Any]] = await self._call("load_markets", reload)
        self._markets_loaded_at_s = time.monotonic() if reload or loaded_at is None else loaded_at
        markets = [
            Market(symbol=str(m["symbol"]), base=str(m["base"]), quote=str(m["quote"]))
            for m in raw.values()
            if m.get("spot") and m.get("quote") == self.quote and m.get("active") is not False
        ]
        return sorted(markets, key=lambda market: market.symbol)

    async def fetch_tickers(self, symbols: Sequence[str]) -> dict[str, Ticker]:
        """Tickers of the known symbols among ``symbols``, keyed by symbol (unknown ones are left out)."""
        if self._exchange.markets is None:
            await self.load_markets()
        known = [s for s in dict.fromkeys(symbols) if s in self._exchange.markets]
        if len(known) < len(symbols):
            log.debug("tickers_unknown_symbols", exchange=self.exchange_id, count=len(symbols) - len(known))
        if not known:
            return {}
        raw: Mapping[str, Mapping[str, Any]] = await self._call("fetch_tickers", known)
        now_ms = self._clock_ms()
        tickers = {s: to_ticker(s, raw[s], now_ms=now_ms) for s in known if s in raw}
        return {s: t for s, t in tickers.items() if t is not None}

    async def fetch_closed_candles(
        self, symbol: str, timeframe: str, *, since_ms: int | None, limit: int, now_ms: int
    ) -> list[Candle]:
        """Closed candles per the ``MarketSource`` contract, paginated within the exchange's per-call cap."""
        if limit <= 0:
            return []
        step_ms = timeframe_ms(timeframe)
        # Without since: start one spare interval before the newest `limit` closed ones (robust to odd alignment).
        start_ms = since_ms if since_ms is not None else (now_ms // step_ms - limit - 1) * step_ms
        fetched = await self._paginate(symbol, timeframe, start_ms=start_ms, wanted=limit, now_ms=now_ms)
        return window(closed_only(fetched, timeframe=timeframe, now_ms=now_ms), since_ms=since_ms, limit=limit)

    async def close(self) -> None:
        """Close the ccxt instance (its HTTP session); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self._exchange.close()
        log.info("ccxt_source_closed", exchange=self.exchange_id)

    def page_limit(self) -> int:
        """Most candles the exchange returns per call (ccxt's spot ``features``), else a conservative default."""
        if self.exchange_id in PAGE_LIMITS:
            return PAGE_LIMITS[self.exchange_id]
        features = getattr(self._exchange, "features", None) or {}
        limit = ((features.get("spot") or {}).get("fetchOHLCV") or {}).get("limit")
        return limit if isinstance(limit, int) and limit > 0 else _FALLBACK_PAGE_LIMIT

    async def _paginate(self, symbol: str, timeframe: str, *, start_ms: int, wanted: int, now_ms: int) -> list[Candle]:
        step_ms, cap = timeframe_ms(timeframe), self.page_limit()
        max_pages = 2 * math.ceil(max(now_ms - start_ms, 0) / step_ms / cap) + 2
        collected: list[Candle] = []
        cursor_ms, closed, pages = start_ms, 0, 0
        while cursor_ms + step_ms <= now_ms and closed < wanted and pages < max_pages:
            remaining = (now_ms - cursor_ms) // step_ms + 1  # intervals up to and including the forming one
            page = int(min(cap, remaining, wanted - closed + 1))
            rows = await self._call("fetch_ohlcv", symbol, timeframe, **self._page_args(cursor_ms, page, step_ms))
            fresh = [c for c in map(to_candle, rows) if c is not None and c.open_time_ms >= cursor_ms]
            pages += 1
            if not fresh:  # no trades in this window (or nothing yet): skip it
                cursor_ms += page * step_ms
                continue
            collected.extend(fresh)
            closed += sum(1 for c in fresh if c.open_time_ms + step_ms <= now_ms)
            cursor_ms = max(c.open_time_ms for c in fresh) + step_ms
        if pages >= max_pages:
            log.warning("candle_pagination_capped", exchange=self.exchange_id, symbol=symbol, pages=pages)
        return collected

    def _page_args(self, cursor_ms: int, page: int, step_ms: int) -> dict[str, Any]:
        args: dict[str, Any] = {"since": cursor_ms, "limit": page}
        if self.exchange_id in SINCE_AS_TO:
            args["params"] = {"to": self._exchange.iso8601(cursor_ms + page * step_ms)}
        return args

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One ccxt call, retried per ``retry_policy`` on transient errors within the cycle's retry budget."""

        async def once() -> Any:
            return await self._call_once(method, *args, **kwargs)

        return await call_with_retries(
            once,
            policy=self.retry_policy,
            sleep=self._sleep,
            rand=self._rand,
            what=f"{self.exchange_id}.{method}",
            budget=self._budget,
        )

    async def _call_once(self, method: str, *args: Any, **kwargs: Any) -> Any:
        token, entered = _CURRENT_CALL.set(method), False
        try:
            await self._gate.enter(method)
            entered = True
            return await getattr(self._exchange, method)(*args, **kwargs)
        except ExchangeError as error:  # from our response hook, or the gate refusing a call during a long ban
            if isinstance(error, Banned) and entered:
                self._gate.ban(error)
            self._log_failure(method, error)
            raise
        except (ccxt.BaseError, OSError, TimeoutError) as exc:
            translated = translate_ccxt_error(exc, secrets=self._secrets)
            self._log_failure(method, translated)
            raise translated from None
        finally:
            if entered:
                self._gate.leave(method)
            _CURRENT_CALL.reset(token)

    def _log_failure(self, method: str, error: ExchangeError) -> None:
        log.warning(
            "exchange_call_failed",
            exchange=self.exchange_id,
            method=method,
            error_type=type(error).__name__,
            error=str(error),
            retry_after_s=getattr(error, "retry_after_s", None),
        )

    def _install_response_hook(self) -> None:
        """Wrap the ccxt instance's ``handle_errors`` (called with every HTTP response): budget, then our reading."""
        ccxt_handle_errors = self._exchange.handle_errors

        def handle_errors(*args: Any) -> Any:
            # ccxt's call: (status, reason, url, method, headers, body text, parsed body, request headers, request body)
            status, headers, body, response = args[0], args[4], args[5], args[6]
            self._gate.observe(_CURRENT_CALL.get(), headers)
            error = classify_response(
                self.exchange_id,
                status=int(status),
                headers=headers,
                body=response,
                text=body if isinstance(body, str) else "",
                now_ms=int(self._wall_clock_s() * 1000),
                secrets=self._secrets,
            )
            if error is not None:
                raise error
            return ccxt_handle_errors(*args)

        self._exchange.handle_errors = handle_errors
