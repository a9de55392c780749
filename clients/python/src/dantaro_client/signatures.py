"""Checking a Dantaro webhook: ``verify_signature(secret, headers, body)`` before trusting a delivery.

Every delivery carries ``Dantaro-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``, where
``body`` is the exact bytes received (parse the JSON only after checking), and ``Dantaro-Delivery``, the same on
every retry of one event: keep the ids you have handled and ignore repeats. The check compares in constant time
and refuses a timestamp more than ``tolerance_s`` away from now (a replayed old delivery). Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

SIGNATURE_HEADER = "Dantaro-Signature"
DELIVERY_HEADER = "Dantaro-Delivery"
EVENT_HEADER = "Dantaro-Event"
DEFAULT_TOLERANCE_S = 300


class SignatureVerificationError(ValueError):
    """The delivery is not signed with this secret, or its timestamp is outside the tolerance."""


def _header(headers: Mapping[str, str] | Iterable[tuple[str, str]], name: str) -> str | None:
    """The value of header ``name``, whatever the case of the keys (dicts, httpx/starlette headers, pairs)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    wanted = name.lower()
    for key, value in items:
        if key.lower() == wanted:
            return value
    return None


def _parse(value: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t" and item.isdigit():
            timestamp = int(item)
        elif key == "v1" and item:
            signatures.append(item)
    if timestamp is None or not signatures:
        raise SignatureVerificationError(f"malformed {SIGNATURE_HEADER} header: expected t=<unix>,v1=<hex>")
    return timestamp, signatures


def expected_signature(secret: str, body: bytes, timestamp_s: int) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp_s>.<body>"`` under ``secret`` (what ``v1`` must be)."""
    message = str(timestamp_s).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes | str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now_s: float | None = None,
) -> None:
    """Return when ``body`` was signed with ``secret`` less than ``tolerance_s`` ago, else raise
    ``SignatureVerificationError`` saying why. ``now_s`` (Unix seconds) defaults to the clock."""
    value = _header(headers, SIGNATURE_HEADER)
    if value is None:
        raise SignatureVerificationError(f"no {SIGNATURE_HEADER} header")
    timestamp_s, signatures = _parse(value)
    now = time.time() if now_s is None else now_s
    skew_s = abs(now - timestamp_s)
    if skew_s > tolerance_s:
        raise SignatureVerificationError(
            f"signature timestamp {timestamp_s} is {skew_s:.0f} s from now (tolerance {tolerance_s:g} s)"
        )
    raw = body.encode("utf-8") if isinstance(body, str) else body
    expected = expected_signature(secret, raw, timestamp_s)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureVerificationError("signature does not match: wrong secret or a body changed in transit")
