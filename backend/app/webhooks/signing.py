"""Signing a delivery: ``Dantaro-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.

Invariants:
- The signed message is the decimal timestamp, a full stop and the exact body bytes sent; the key is the secret's
  UTF-8 bytes. Receivers recompute it and compare in constant time (``dantaro_client.signatures.verify_signature``,
  the client package's verifier, is tested against ``sign``), and refuse timestamps older than their tolerance.
- ``Dantaro-Delivery`` is the delivery's id, the same on every attempt: the receiver's idempotency key.
Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac

EVENT_HEADER = "Dantaro-Event"
DELIVERY_HEADER = "Dantaro-Delivery"
SIGNATURE_HEADER = "Dantaro-Signature"
ATTEMPT_HEADER = "Dantaro-Attempt"
USER_AGENT = "dantaro-webhooks/1"


def signature(secret: str, body: bytes, *, timestamp_s: int) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp_s>.<body>"`` under ``secret``."""
    message = str(timestamp_s).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, timestamp_s: int) -> str:
    """The ``Dantaro-Signature`` value: ``t=<timestamp_s>,v1=<signature>``."""
    return f"t={timestamp_s},v1={signature(secret, body, timestamp_s=timestamp_s)}"


def delivery_headers(
    *, secret: str, body: bytes, event: str, delivery_id: str, attempt: int, timestamp_s: int
) -> dict[str, str]:
    """Every header of one attempt of a delivery."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        ATTEMPT_HEADER: str(attempt),
        SIGNATURE_HEADER: signature_header(secret, body, timestamp_s=timestamp_s),
    }
