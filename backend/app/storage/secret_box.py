"""Webhook signing secrets at rest: sealed with AES-256-GCM when a key is configured, else stored as they are.

Invariants:
- A signing secret must be recoverable (the worker signs every delivery with it), so unlike API keys it cannot be
  stored as a hash. With ``DANTARO_WEBHOOK_SECRETS_KEY`` set it is stored as ``aesgcm:<key id>:<base64(nonce ||
  ciphertext)>``: a database dump or backup alone cannot sign. Without a key (development) it is stored as
  ``plain:<secret>``: anyone who reads the table can sign events a receiver will accept.
- The webhook's id is the associated data: a sealed secret copied onto another row does not open.
- ``<key id>`` is the first 8 hex digits of SHA-256 of the key, so opening with another key fails with a message that
  says so rather than a bare authentication error. Nothing here logs or prints a secret.
- ``cryptography`` is imported only when a secret is sealed or opened with a key: the `dantaro` command (and so
  `dantaro api`) starts without it.
"""

from __future__ import annotations

import base64
import hashlib
import os

SEALED = "aesgcm"
PLAIN = "plain"
NONCE_BYTES = 12  # the GCM nonce size NIST SP 800-38D recommends


class SecretUnreadableError(ValueError):
    """A stored secret cannot be opened with the configured key (none, another one, or a damaged value)."""


def key_id(key: bytes) -> str:
    """The short public name of a key: 8 hex digits of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


def seal(secret: str, *, key: bytes | None, context: str) -> str:
    """The stored form of ``secret`` for the row named ``context`` (sealed with ``key``; as-is without one)."""
    if key is None:
        return f"{PLAIN}:{secret}"
    nonce = os.urandom(NONCE_BYTES)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    ciphertext = AESGCM(key).encrypt(nonce, secret.encode("utf-8"), context.encode("utf-8"))
    return f"{SEALED}:{key_id(key)}:{base64.b64encode(nonce + ciphertext).decode('ascii')}"


def open_secret(stored: str, *, key: bytes | None, context: str) -> str:
    """The secret behind ``stored`` (see ``seal``); ``SecretUnreadableError`` when this key cannot open it."""
    scheme, _, rest = stored.partition(":")
    if scheme == PLAIN:
        return rest
    if scheme != SEALED:
        raise SecretUnreadableError(f"unknown stored secret format {scheme!r}")
    sealed_with, _, payload = rest.partition(":")
    if key is None:
        raise SecretUnreadableError(f"the secret is sealed (key {sealed_with}); DANTARO_WEBHOOK_SECRETS_KEY is unset")
    if sealed_with != key_id(key):
        raise SecretUnreadableError(
            f"the secret was sealed with key {sealed_with}; DANTARO_WEBHOOK_SECRETS_KEY is key {key_id(key)}"
        )
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    raw = base64.b64decode(payload)
    try:
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode("utf-8"))
    except InvalidTag:
        raise SecretUnreadableError("the stored secret does not open: damaged or moved from another row") from None
    return plain.decode("utf-8")
