"""Each exchange's documented error responses (status, headers, body) → our error type and retry decision.

Every row is served into the real ccxt class through ``CcxtSource`` (only the socket is replaced:
``tests.support.recorded_ccxt``), so it passes our response hook (``app.exchange.classify``) and, when that does not
recognise it, ccxt's own mapping. ``ccxt_alone`` is what the same response became through ccxt's mapping only
(``translate_ccxt_error`` of ccxt's exception): the rows where it differs are what the classification fixes — a
rate limit or server error ccxt would have made a never-retried ``ExchangeError``. The bodies and their sources are
listed in ``app/exchange/quirks.py`` and docs/exchanges.md.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import ccxt
import pytest
from structlog.testing import capture_logs

from app.exchange import (
    Banned,
    ExchangeError,
    ExchangeUnavailable,
    RateLimited,
    SymbolNotFound,
    translate_ccxt_error,
)
from app.exchange.classify import banned_for_s, body_failure, classify_response, value_at
from app.exchange.quirks import BODY_CODES, Failure
from app.exchange.retry import RetryPolicy, delay_s
from tests.support.recorded_ccxt import FAKES, SECRET_OPTIONS, Reply, make_source

POLICY = RetryPolicy(max_attempts=4, base_delay_s=1.0, max_delay_s=10.0, ban_max_wait_s=300.0)
QUOTES = {"upbit": "KRW", "bithumb": "KRW", "binance": "USDT", "okx": "USDT"}
BAN_MS = 120_000  # the Binance ban rows: banned until now + 2 minutes


@dataclass(frozen=True)
class Row:
    exchange: str
    status: int
    body: Any  # JSON-encoded unless a str
    ours: type[ExchangeError]
    delay: float | None  # delay_s(POLICY, error, attempt=1, draw=1.0): None = not retried, 0 = the ban gate waits
    ccxt_alone: type[ExchangeError]
    headers: tuple[tuple[str, str], ...] = ()
    retry_after_s: float | None = None

    def reply(self) -> Reply:
        body = self.body if isinstance(self.body, str) else json.dumps(self.body)
        if "{until}" in body:
            body = body.replace("{until}", str(int(time.time() * 1000) + BAN_MS))
        return Reply(self.status, body, {"Content-Type": "application/json", **dict(self.headers)})


UPBIT_429 = {"error": {"name": "too_many_requests", "message": "Too many API requests."}}
BINANCE_BAN = {
    "code": -1003,
    "msg": "Way too much request weight used; IP banned until {until}. "
    "Please use WebSocket Streams for live updates to avoid bans.",
}
BINANCE_WEIGHT = {
    "code": -1003,
    "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API.",
}
REMAINING_0 = (("Remaining-Req", "group=market; min=1800; sec=0"),)
OKX_SUB_LIMIT = {"code": "50061", "msg": "Sub-account rate limit reached", "data": []}
OKX_DOWN = {"code": "50001", "msg": "Service temporarily unavailable"}
OKX_BUSY = {"code": "50013", "msg": "System is busy", "data": []}

ROWS = [
    # Upbit (docs.upbit.com/kr/reference/rest-api-guide, /rate-limits)
    Row("upbit", 429, UPBIT_429, RateLimited, 1.0, ExchangeError, REMAINING_0),
    Row("upbit", 429, UPBIT_429, RateLimited, 3.0, ExchangeError, (("Retry-After", "3"),), 3.0),
    Row("upbit", 429, "Too many API requests.", RateLimited, 1.0, RateLimited),
    Row("upbit", 200, UPBIT_429, RateLimited, 1.0, ExchangeError),
    Row("upbit", 418, UPBIT_429, Banned, 0.0, ExchangeError, (("Retry-After", "30"),), 30.0),
    Row("upbit", 418, UPBIT_429, Banned, 0.0, ExchangeError),
    Row("upbit", 500, {"error": {"name": "server_error", "message": "x"}}, ExchangeUnavailable, 1.0, ExchangeError),
    Row("upbit", 502, "<html><body>502 Bad Gateway</body></html>", ExchangeUnavailable, 1.0, ExchangeUnavailable),
    Row("upbit", 522, "", ExchangeUnavailable, 1.0, ExchangeUnavailable),
    Row("upbit", 400, {"error": {"name": "validation_error", "message": "x"}}, ExchangeError, None, ExchangeError),
    # Bithumb (apidocs.bithumb.com: api-요청-수-제한-안내, v1.2.0 api-주요-에러-코드)
    Row("bithumb", 429, {"error": {"name": "too_many_requests", "message": "x"}}, RateLimited, 1.0, ExchangeError),
    Row("bithumb", 200, {"status": "5600", "message": "too many connections"}, RateLimited, 1.0, ExchangeError),
    Row("bithumb", 200, {"status": "5600", "message": "Please try again"}, RateLimited, 1.0, ExchangeError),
    Row("bithumb", 200, {"status": "5600", "message": "접속 차단된 IP입니다."}, Banned, 0.0, ExchangeError),
    Row("bithumb", 503, {"error": {"name": "server_error", "message": "x"}}, ExchangeUnavailable, 1.0, ExchangeError),
    Row("bithumb", 400, {"error": {"name": "invalid_parameter", "message": "x"}}, ExchangeError, None, ExchangeError),
    # Binance (developers.binance.com/docs/binance-spot-api-docs: rest-api/limits, errors, http-return-codes)
    Row("binance", 429, BINANCE_WEIGHT, RateLimited, 10.0, RateLimited, (("Retry-After", "12"),), 12.0),
    Row("binance", 418, BINANCE_BAN, Banned, 0.0, RateLimited, (("Retry-After", "120"),), 120.0),
    Row("binance", 418, BINANCE_BAN, Banned, 0.0, RateLimited, (), BAN_MS / 1000),
    Row("binance", 418, BINANCE_BAN, Banned, None, RateLimited, (("Retry-After", "259200"),), 259200.0),
    Row("binance", 500, {"code": -1001, "msg": "Internal error."}, ExchangeUnavailable, 1.0, ExchangeError),
    Row("binance", 400, {"code": -1000, "msg": "An unknown error."}, ExchangeUnavailable, 1.0, ExchangeError),
    Row("binance", 503, {"code": -1008, "msg": "Server is busy."}, ExchangeUnavailable, 1.0, ExchangeError),
    Row("binance", 403, "<html>403 Forbidden (WAF)</html>", ExchangeUnavailable, 1.0, ExchangeUnavailable),
    Row("binance", 400, {"code": -1121, "msg": "Invalid symbol."}, SymbolNotFound, None, SymbolNotFound),
    # OKX (okx.com/docs-v5/en/#error-code)
    Row("okx", 429, {"code": "50011", "msg": "Rate limit reached.", "data": []}, RateLimited, 1.0, RateLimited),
    Row("okx", 429, OKX_SUB_LIMIT, RateLimited, 1.0, ExchangeError),
    Row("okx", 200, OKX_SUB_LIMIT, RateLimited, 1.0, ExchangeError),
    Row("okx", 200, {"code": "50011", "msg": "Rate limit reached.", "data": []}, RateLimited, 1.0, RateLimited),
    Row("okx", 503, OKX_DOWN, ExchangeUnavailable, 1.0, ExchangeUnavailable),
    Row("okx", 200, OKX_BUSY, ExchangeUnavailable, 1.0, ExchangeUnavailable),
    Row("okx", 200, {"code": "51001", "msg": "Instrument ID does not exist"}, SymbolNotFound, None, SymbolNotFound),
]  # fmt: skip


def row_id(row: Row) -> str:
    text = row.body if isinstance(row.body, str) else json.dumps(row.body)
    return f"{row.exchange}-{row.status}-{text[:40]}"


async def ccxt_alone(row: Row) -> ExchangeError:
    """What ccxt's own mapping (and our translation of its exception) makes of the response."""
    fake = FAKES[row.exchange]({}, {})
    fake.failures.append(row.reply())
    try:
        with pytest.raises(ccxt.BaseError) as raised:
            await fake.fetch("https://example.invalid/v1/market/all")
    finally:
        await fake.close()
    return translate_ccxt_error(raised.value)


@pytest.mark.parametrize("row", ROWS, ids=row_id)
async def test_documented_error_responses_become_our_errors(row: Row) -> None:
    source, fake = make_source(FAKES[row.exchange], {}, row.exchange, QUOTES[row.exchange], dict(SECRET_OPTIONS))
    fake.failures.append(row.reply())
    try:
        with capture_logs() as logs, pytest.raises(ExchangeError) as raised:
            await source.load_markets()
    finally:
        await source.close()
    error = raised.value
    assert type(error) is row.ours, error
    retry_after_s = getattr(error, "retry_after_s", None)
    if row.retry_after_s is None:
        assert retry_after_s is None
    else:
        assert retry_after_s == pytest.approx(row.retry_after_s, abs=2.0)
    assert delay_s(POLICY, error, attempt=1, draw=1.0) == row.delay
    assert type(await ccxt_alone(row)) is row.ccxt_alone
    assert all(secret not in str(error) and secret not in repr(logs) for secret in SECRET_OPTIONS.values())
    banned = [e for e in logs if e["event"] == "exchange_banned"]
    assert [e["log_level"] for e in banned] == (["error"] if row.ours is Banned else [])


def test_every_rate_limit_and_server_failure_is_retried() -> None:
    """The Done-when's "never a non-retried rate limit": every row we read as a rate limit or outage is retried
    (a ban by the gate), except a ban longer than we wait."""
    for row in ROWS:
        if row.ours in (RateLimited, ExchangeUnavailable) or (row.ours is Banned and row.retry_after_s != 259200.0):
            assert row.delay is not None, row


@pytest.mark.parametrize(
    ("body", "path", "expected"),
    [
        ({"error": {"name": "too_many_requests"}}, "error.name", "too_many_requests"),
        ({"code": -1003}, "code", "-1003"),
        ({"code": "50011"}, "code", "50011"),
        ({"error": "text"}, "error.name", None),
        ([{"code": 1}], "code", None),
        ({"code": None}, "code", None),
        ({"code": True}, "code", None),
        ("not json", "code", None),
    ],
)
def test_value_at_reads_dotted_paths_as_text(body: Any, path: str, expected: str | None) -> None:
    assert value_at(body, path) == expected


def test_the_most_severe_reading_wins() -> None:
    assert body_failure(BODY_CODES["binance"], BINANCE_BAN) is Failure.BANNED  # -1003 is also a rate limit
    text, now_ms = "IP banned until 1567130441000.", 1567130440000
    error = classify_response("binance", status=429, headers={}, body=BINANCE_BAN, text=text, now_ms=now_ms)
    assert isinstance(error, Banned) and error.retry_after_s == 1.0
    upbit = classify_response("upbit", status=500, headers={}, body=UPBIT_429, text="", now_ms=0)
    assert type(upbit) is RateLimited and "upbit HTTP 500: (empty body)" in str(upbit)
    assert classify_response("upbit", status=404, headers={}, body={"error": {}}, text="", now_ms=0) is None
    assert (
        classify_response("kraken", status=429, headers={"Retry-After": "5"}, body=None, text="", now_ms=0) is not None
    )


def test_ban_end_from_the_message() -> None:
    assert banned_for_s("IP banned until 1567130440000. Please", now_ms=1567130400000) == 40.0
    assert banned_for_s("IP banned until 1567130440000.", now_ms=1567130500000) == 0.0
    assert banned_for_s("Too much request weight used", now_ms=0) is None
