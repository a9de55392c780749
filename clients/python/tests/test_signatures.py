"""``verify_signature`` on its own: a signature made the documented way passes; anything else is refused, saying why.

The server's ``app.webhooks.signing`` is checked against this verifier in ``backend/tests/webhooks/test_signing.py``.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from dantaro_client.signatures import SignatureVerificationError, verify_signature

SECRET = "whsec_client-test-secret"
BODY = b'{"event":"run.published","delivery_id":"d-1","data":{"run_id":"r1"}}'
NOW_S = 1_767_225_600  # 2026-01-01T00:00:00Z


def _header(secret: str, body: bytes, timestamp_s: int) -> str:
    digest = hmac.new(secret.encode(), str(timestamp_s).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp_s},v1={digest}"


def test_a_signature_made_the_documented_way_verifies() -> None:
    headers = {"dantaro-signature": _header(SECRET, BODY, NOW_S - 10)}  # any header case
    verify_signature(SECRET, headers, BODY, now_s=NOW_S)
    verify_signature(SECRET, list(headers.items()), BODY.decode(), now_s=NOW_S)  # pairs and str bodies too


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({}, BODY, "no Dantaro-Signature"),
        ({"Dantaro-Signature": "v1=abc"}, BODY, "malformed"),
        ({"Dantaro-Signature": _header("whsec_other", BODY, NOW_S)}, BODY, "does not match"),
        ({"Dantaro-Signature": _header(SECRET, BODY, NOW_S)}, BODY + b" ", "does not match"),
        ({"Dantaro-Signature": _header(SECRET, BODY, NOW_S - 301)}, BODY, "tolerance 300"),
        ({"Dantaro-Signature": _header(SECRET, BODY, NOW_S + 301)}, BODY, "tolerance 300"),
    ],
)
def test_anything_else_is_refused_with_the_reason(headers: dict[str, str], body: bytes, message: str) -> None:
    with pytest.raises(SignatureVerificationError, match=message):
        verify_signature(SECRET, headers, body, now_s=NOW_S)


def test_the_tolerance_is_the_callers() -> None:
    headers = {"Dantaro-Signature": _header(SECRET, BODY, NOW_S - 3600)}
    verify_signature(SECRET, headers, BODY, tolerance_s=7200, now_s=NOW_S)
    with pytest.raises(SignatureVerificationError):
        verify_signature(SECRET, headers, BODY, tolerance_s=60, now_s=NOW_S)


def test_any_of_several_v1_values_may_match() -> None:
    good = _header(SECRET, BODY, NOW_S).split("v1=")[1]
    verify_signature(SECRET, {"Dantaro-Signature": f"t={NOW_S},v1={'0' * 64},v1={good}"}, BODY, now_s=NOW_S)
