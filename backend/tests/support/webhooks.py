"""Webhook test helpers: settings for loopback receivers, a webhook added through the repository, a name table
standing in for DNS, and running delivery passes until a condition holds (monotonic seconds)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, webhook_key_bytes
from app.storage.outbox import Attempt, DeliveryRepository, DeliveryRow
from app.storage.webhooks import WebhookRepository, WebhookRow
from app.webhooks.addresses import Lookup
from app.webhooks.dispatcher import WebhookDispatcher


def new_secrets_key() -> str:
    """A fresh ``DANTARO_WEBHOOK_SECRETS_KEY`` (base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def hook_settings(**overrides: Any) -> Settings:
    """Settings for deliveries to a loopback receiver: private URLs allowed, short timeouts and retries."""
    values: dict[str, Any] = {
        "webhook_allow_private_urls": True,
        "webhook_timeout_s": 5.0,
        "webhook_retry_base_s": 0.2,
        "webhook_retry_max_delay_s": 1.0,
        "webhook_secrets_key": new_secrets_key(),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def add_hook(
    session_factory: sessionmaker[Session], settings: Settings, *, url: str, events: Sequence[str], **filters: Any
) -> tuple[WebhookRow, str]:
    """Store a webhook (no URL check: the tests choose the addresses) and return it with its secret."""
    with session_factory.begin() as session:
        return WebhookRepository(session).add(url=url, events=events, key=webhook_key_bytes(settings), **filters)


def table_lookup(names: Mapping[str, Sequence[str]]) -> Lookup:
    """A resolver that answers from ``names`` (name -> addresses) and fails like DNS for any other name."""

    async def lookup(host: str, port: int) -> list[str]:
        if host not in names:
            raise OSError(f"{host} is not in the test's name table")
        return list(names[host])

    return lookup


def deliveries(session_factory: sessionmaker[Session]) -> list[DeliveryRow]:
    """Every delivery, newest first."""
    with session_factory() as session:
        return DeliveryRepository(session).recent(limit=1000)


def attempts(session_factory: sessionmaker[Session], delivery_id: str) -> list[Attempt]:
    """Every attempt of one delivery, in order."""
    with session_factory() as session:
        return DeliveryRepository(session).attempts([delivery_id])[delivery_id]


async def deliver_until(dispatcher: WebhookDispatcher, done: Callable[[], bool], *, timeout_s: float, what: str) -> int:
    """Run delivery passes (every 50 ms) until ``done()``; returns how many passes it took."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    passes = 0
    while not done():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await dispatcher.run_pass()
        passes += 1
        await asyncio.sleep(0.05)
    return passes
