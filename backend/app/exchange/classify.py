"""Which of our errors a failed exchange response is: from its HTTP status and the exchange's documented error codes.

Invariants:
- ``CcxtSource`` calls ``classify_response`` for every HTTP response before ccxt's own ``handle_errors`` (which, for
  Upbit and Bithumb, turns any JSON error body it does not know into a plain ``ExchangeError`` before the status is
  looked at): a 429 is ``RateLimited`` whatever its body says, a 418 is ``Banned``, a 5xx is
  ``ExchangeUnavailable``, and a documented code (``quirks.BODY_CODES``) is recognised whatever its status.
- When status and body disagree, the more severe reading wins (``quirks.Failure``): a 500 saying "too many
  requests" is a rate limit, a 429 saying "banned until" is a ban.
- ``None``: nothing recognised; ccxt's mapping and ``translate_ccxt_error`` decide (e.g. an unknown symbol).
- ``retry_after_s``: the ``Retry-After`` header (seconds or HTTP date), else for a ban the body's "banned until
  <epoch ms>" (Binance); ``None`` when the exchange said neither.
- Messages name the exchange and status, with the body redacted and truncated like every error message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from app.exchange.errors import (
    Banned,
    ExchangeError,
    ExchangeUnavailable,
    RateLimited,
    redact,
    retry_after_from_headers,
)
from app.exchange.quirks import BODY_CODES, SERVER_ERROR_STATUSES, STATUS_FAILURES, BodyCode, Failure

_BANNED_UNTIL_MS = re.compile(r"banned until (\d{12,14})")


def value_at(body: Any, path: str) -> str | None:
    """The text at a dotted ``path`` of a parsed JSON body (numbers as their text), ``None`` when absent."""
    node = body
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    if isinstance(node, bool) or node is None or isinstance(node, Mapping | list):
        return None
    return str(node)


def body_failure(codes: Iterable[BodyCode], body: Any) -> Failure | None:
    """The most severe failure any of ``codes`` reads in ``body``, ``None`` when none matches."""
    found = [
        code.failure
        for code in codes
        if value_at(body, code.path) == code.value
        and (not code.contains or code.contains in (value_at(body, code.message_path) or ""))
    ]
    return max(found, default=None)


def status_failure(status: int) -> Failure | None:
    """What the HTTP status alone says (418, 429, 5xx), ``None`` for anything else."""
    if status in STATUS_FAILURES:
        return STATUS_FAILURES[status]
    return Failure.UNAVAILABLE if status in SERVER_ERROR_STATUSES else None


def banned_for_s(text: str, *, now_ms: int) -> float | None:
    """Seconds until the "banned until <epoch ms>" a ban message names, ``None`` when it names none."""
    match = _BANNED_UNTIL_MS.search(text)
    return None if match is None else max(0.0, (int(match.group(1)) - now_ms) / 1000)


def classify_response(
    exchange_id: str,
    *,
    status: int,
    headers: Mapping[str, str] | None,
    body: Any,
    text: str,
    now_ms: int,
    secrets: Iterable[str] = (),
) -> ExchangeError | None:
    """Our error for one HTTP response (``body`` parsed, ``text`` raw), ``None`` when it is not a recognised one."""
    readings = (status_failure(status), body_failure(BODY_CODES.get(exchange_id, ()), body))
    failure = max((reading for reading in readings if reading is not None), default=None)
    if failure is None:
        return None
    message = redact(f"{exchange_id} HTTP {status}: {text.strip() or '(empty body)'}", secrets=secrets)
    retry_after_s = retry_after_from_headers(headers)
    if failure is Failure.BANNED:
        if retry_after_s is None:
            retry_after_s = banned_for_s(text, now_ms=now_ms)
        return Banned(message, retry_after_s=retry_after_s)
    if failure is Failure.RATE_LIMITED:
        return RateLimited(message, retry_after_s=retry_after_s)
    return ExchangeUnavailable(message)
