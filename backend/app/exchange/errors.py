"""Our exchange error types, and the one place ccxt's exception hierarchy is translated into them.

Invariants:
- Every error a ``MarketSource`` raises is an ``ExchangeError``; callers never see a ccxt exception.
- ``ExchangeUnavailable`` and ``RateLimited`` (with its ``Banned``) are transient (retry later); ``SymbolNotFound``,
  ``BadData``, ``RetryBudgetSpent`` (retrying is what it stopped) and a plain ``ExchangeError`` are not.
- Which failed response is which is decided in ``app.exchange.classify`` (HTTP status and each exchange's
  documented codes) before ccxt's own mapping; ``translate_ccxt_error`` covers what never reached an HTTP answer.
- Messages never contain credentials: known secret values and credential-looking query parameters are
  redacted, and messages are truncated (exchanges echo whole HTML error pages).
- ``retry_after_s`` is in seconds, ``None`` when the exchange did not say.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import ccxt

_MAX_MESSAGE_CHARS = 500
_REDACTED = "***"
_CREDENTIAL_PARAM_RE = re.compile(
    r"(?i)\b(signature|api[_-]?key|apikey|secret|password|passphrase|token|access[_-]?key)=[^&\s\"']+"
)
_BEARER_RE = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._\-]+")


class ExchangeError(Exception):
    """Any failure talking to an exchange or reading market data."""


class ExchangeUnavailable(ExchangeError):  # noqa: N818 (the architecture's names)
    """The exchange could not be reached or answered with a server error or timeout; retry later."""


class RateLimited(ExchangeError):  # noqa: N818 (the architecture's names)
    """The exchange refused the request for rate limiting; ``retry_after_s`` is its hint, if any."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Banned(RateLimited):
    """The exchange banned this IP (HTTP 418 or its ban code); ``retry_after_s`` is when the ban ends, if it said."""


class SymbolNotFound(ExchangeError):  # noqa: N818 (the architecture's names)
    """The exchange (or the replay data) does not know this symbol or timeframe."""


class RetryBudgetSpent(ExchangeError):  # noqa: N818 (the architecture's names)
    """A transient error was not retried: the cycle's retry budget could not grant the wait (message: the error)."""


class BadData(ExchangeError):  # noqa: N818 (the architecture's names)
    """A symbol's data is unusable: a damaged replay file, a malformed candle row from the exchange (not retried)."""


def redact(message: str, *, secrets: Iterable[str] = ()) -> str:
    """``message`` with secret values and credential-looking parameters masked, truncated to a safe length."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, _REDACTED)
    message = _CREDENTIAL_PARAM_RE.sub(lambda match: f"{match.group(1)}={_REDACTED}", message)
    message = _BEARER_RE.sub(f"Bearer {_REDACTED}", message)
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[:_MAX_MESSAGE_CHARS] + "…"
    return message


def retry_after_from_headers(headers: Mapping[str, str] | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), ``None`` when absent or unreadable."""
    if not headers:
        return None
    value = next((str(v) for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(tz=UTC))).total_seconds())


def translate_ccxt_error(
    exc: BaseException, *, retry_after_s: float | None = None, secrets: Iterable[str] = ()
) -> ExchangeError:
    """Our error type for a ccxt (or transport) exception, with a redacted message; the caller raises it."""
    message = redact(f"{type(exc).__name__}: {exc}", secrets=secrets)
    if isinstance(exc, ExchangeError):
        return exc
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return RateLimited(message, retry_after_s=retry_after_s)
    if isinstance(exc, ccxt.NetworkError | TimeoutError | ConnectionError):
        return ExchangeUnavailable(message)
    if isinstance(exc, ccxt.BadSymbol):
        return SymbolNotFound(message)
    return ExchangeError(message)
