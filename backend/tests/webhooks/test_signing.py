"""The server's signing and the client package's ``verify_signature`` agree: what one signs the other accepts, and a
change to the body, the secret or the timestamp is refused."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from dantaro_client.signatures import SignatureVerificationError, verify_signature

from app.webhooks.signing import delivery_headers, signature_header

SECRET = "whsec_3G7kq0cWb4S0f2y1mQ0x8z7r6t5u4v3w2x1y0z9a8b7"
BODY = b'{"event":"label.changed","delivery_id":"7c1e","data":{"symbol":"BTC/USDT","from":"HOLD","to":"BUY"}}'
NOW_S = 1_767_225_600


def test_the_documented_formula() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW_S}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature_header(SECRET, BODY, timestamp_s=NOW_S) == f"t={NOW_S},v1={expected}"


def test_what_the_server_signs_the_client_accepts() -> None:
    headers = delivery_headers(
        secret=SECRET, body=BODY, event="label.changed", delivery_id="7c1e", attempt=2, timestamp_s=NOW_S
    )
    verify_signature(SECRET, headers, BODY, now_s=NOW_S + 299)
    assert headers["Dantaro-Delivery"] == "7c1e" and headers["Dantaro-Event"] == "label.changed"


@pytest.mark.parametrize(
    ("secret", "body", "now_s", "message"),
    [
        ("whsec_another", BODY, NOW_S, "does not match"),
        (SECRET, BODY.replace(b"BUY", b"SELL"), NOW_S, "does not match"),
        (SECRET, BODY, NOW_S + 301, "tolerance"),
    ],
)
def test_what_the_client_refuses(secret: str, body: bytes, now_s: int, message: str) -> None:
    headers = {"Dantaro-Signature": signature_header(SECRET, BODY, timestamp_s=NOW_S)}
    with pytest.raises(SignatureVerificationError, match=message):
        verify_signature(secret, headers, body, now_s=now_s)
