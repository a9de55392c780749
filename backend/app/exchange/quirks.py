"""What we know about each exchange, kept as data: ccxt constructor defaults, request quirks, the error codes that mean
"slow down" or "try later", and the headers that report the request budget left. Each fact cites its source.

Invariants:
- Data only: no I/O, nothing built at import time. Keys are ccxt exchange ids; an exchange missing from a table has
  no entry of that kind (its errors are classified by HTTP status alone, its calls paced by ccxt's limiter alone).
- ``Failure`` is ordered by severity: when a response reads as several (a 429 whose body names a ban), the most
  severe one applies (``app.exchange.classify``).
- A ``BodyCode`` matches on the exact text at a dotted path of the JSON body (numbers compared as text), plus a
  substring of the message when ``contains`` is set, so one code with several documented meanings stays apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Failure(IntEnum):
    """What a failed response asks of us, least to most severe."""

    UNAVAILABLE = 1  # a server-side failure: retry with backoff
    RATE_LIMITED = 2  # slow down: retry after its Retry-After (or backoff)
    BANNED = 3  # this IP is banned: call nothing on that exchange until the ban ends


@dataclass(frozen=True, slots=True)
class BodyCode:
    """A documented error in a JSON body: the text at ``path`` equals ``value`` (and the message at
    ``message_path`` contains ``contains``, when set)."""

    path: str
    value: str
    failure: Failure
    message_path: str = ""
    contains: str = ""


@dataclass(frozen=True, slots=True)
class BudgetHeader:
    """A response header reporting how much of the exchange's request budget is left in its current window."""

    name: str  # lower case
    field: str = ""  # the value sits in ``field=N`` of a ``k=v; k=v`` list; "": the whole header is the number
    limit: float | None = None  # set: the header reports what is *used* of ``limit``; None: what remains
    window_s: float = 1.0
    aligned: bool = False  # windows start at whole multiples of window_s on the clock; else at the first request
    call_cost: float = 1.0  # budget one of our calls takes
    reserve: float = 0.0  # budget left unspent (for other clients on the same IP and our own heavier calls)
    per_call: bool = False  # one budget per kind of call (Upbit's groups); else one for every call


# -- ccxt constructor defaults and request quirks -----------------------------------------------------------------

# Keep market loading to public spot endpoints where an exchange would otherwise also load derivatives (and, with
# credentials, call private currency endpoints that market data does not need).
EXCHANGE_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "binance": {
        "options": {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        }
    },
    "okx": {"options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}},
    # ccxt's bithumb lists minute/hour timeframes only, though its fetch_ohlcv serves days, weeks and months.
    "bithumb": {"timeframes": {"1d": "1d", "1w": "1w", "1M": "1M"}},
}
# Exchanges whose ccxt ``fetch_ohlcv`` ignores ``since`` (Bithumb v2 returns the newest ``count``): the page end is
# sent as Upbit-style ``to`` (exclusive, UTC ISO 8601).
SINCE_AS_TO = frozenset({"bithumb"})
# Per-call candle caps below what ccxt's ``features`` say: OKX's history-candles (used for anything older than
# 1439 candles) serves at most 100, newest first, so a larger page would silently lose its older part.
PAGE_LIMITS: Mapping[str, int] = {"okx": 100}


# -- failed responses -----------------------------------------------------------------------------------------------

# For every exchange (RFC 9110; Binance and Upbit document both): 418 = this IP is banned, 429 = too many requests.
# 5xx (Cloudflare's 520-530 included) is the exchange's own failure. Other 4xx are left to ccxt's mapping.
STATUS_FAILURES: Mapping[int, Failure] = {418: Failure.BANNED, 429: Failure.RATE_LIMITED}
SERVER_ERROR_STATUSES = range(500, 600)

BODY_CODES: Mapping[str, tuple[BodyCode, ...]] = {
    # Upbit: errors are {"error": {"name", "message"}} (https://docs.upbit.com/kr/reference/rest-api-guide); a 429
    # says "too_many_requests" (the 429 body reported in issue 18), which ccxt's upbit.handle_errors does not know
    # and raises as a plain ExchangeError before the status is looked at. 418 = blocked after repeated 429s
    # (https://docs.upbit.com/kr/reference/rate-limits): classified by its status.
    "upbit": (BodyCode("error.name", "too_many_requests", Failure.RATE_LIMITED),),
    # Bithumb: the v1 (Upbit-shaped) API documents no rate-limit error name, only that an exceeded category is
    # "temporarily restricted" (https://apidocs.bithumb.com/docs/api-요청-수-제한-안내): its 429 is classified by
    # status. The older API answers HTTP 200 with status 5600 and these messages: "too many connections" (an IP
    # restricted for excessive connections) and "Please try again" (too many requests); "접속 차단된 IP입니다." is
    # a blocked IP (https://apidocs.bithumb.com/v1.2.0/docs/api-주요-에러-코드). ccxt maps 5600 to ExchangeError.
    "bithumb": (
        BodyCode("status", "5600", Failure.RATE_LIMITED, message_path="message", contains="too many connections"),
        BodyCode("status", "5600", Failure.RATE_LIMITED, message_path="message", contains="Please try again"),
        BodyCode("status", "5600", Failure.BANNED, message_path="message", contains="접속 차단된 IP"),
    ),
    # Binance: {"code", "msg"}; -1003 TOO_MANY_REQUESTS, whose third wording is a ban "IP banned until <ms>" (sent
    # with HTTP 418); 10xx "General Server or Network issues" -1000 UNKNOWN, -1001 DISCONNECTED, -1006
    # UNEXPECTED_RESP, -1007 TIMEOUT, -1008 SERVER_BUSY are server-side
    # (https://developers.binance.com/docs/binance-spot-api-docs/errors). ccxt maps -1000/-1001/-1008 to
    # OperationFailed, which is not a NetworkError: without this table they would never be retried.
    "binance": (
        BodyCode("code", "-1003", Failure.BANNED, message_path="msg", contains="banned until"),
        BodyCode("code", "-1003", Failure.RATE_LIMITED),
        *(BodyCode("code", code, Failure.UNAVAILABLE) for code in ("-1000", "-1001", "-1006", "-1007", "-1008")),
    ),
    # OKX v5: {"code", "msg", "data"}; 50011 "Rate limit reached" and 50061 "Sub-account rate limit reached" (both
    # HTTP 429), 50001 "Service temporarily unavailable" (503), 50004 "API endpoint request timeout", 50013 "System
    # is busy" (HTTP 200), 50026 "System error" (500) (https://www.okx.com/docs-v5/en/#error-code). ccxt maps 50061
    # to ExchangeError (never retried).
    "okx": (
        BodyCode("code", "50011", Failure.RATE_LIMITED),
        BodyCode("code", "50061", Failure.RATE_LIMITED),
        *(BodyCode("code", code, Failure.UNAVAILABLE) for code in ("50001", "50004", "50013", "50026")),
    ),
}


# -- the budget the exchange reports --------------------------------------------------------------------------------

BUDGET_HEADERS: Mapping[str, BudgetHeader] = {
    # Upbit: every response carries "Remaining-Req: group=candles; min=1800; sec=9": ``sec`` is what remains of the
    # group's per-second limit (``min`` is deprecated and fixed); the quotation groups (markets, candles, trades,
    # tickers, order books) are counted apart, 10 requests a second each per IP, the second counted from the first
    # request (https://docs.upbit.com/kr/reference/rate-limits, https://docs.upbit.com/v1.4.0/docs/user-request-guide).
    # Each of our calls uses one group, so budgets are kept per call.
    "upbit": BudgetHeader(name="remaining-req", field="sec", window_s=1.0, per_call=True),
    # Binance: "X-MBX-USED-WEIGHT-1M" is the request weight this IP used in the current clock minute, of 6000 a
    # minute; a 1 MINUTE interval starts every minute
    # (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits, .../websocket-api/rate-limits).
    # Klines cost 2; a reserve of 600 leaves room for a tickers call (up to 80) and other clients of this IP.
    "binance": BudgetHeader(
        name="x-mbx-used-weight-1m", limit=6000.0, window_s=60.0, aligned=True, call_cost=2.0, reserve=600.0
    ),
}
