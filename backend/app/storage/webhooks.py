"""Webhook subscriptions: where to POST which events, their filters and their signing secret.

Invariants:
- A webhook id is 12 lowercase hex digits; a signing secret reads ``whsec_<token>`` (``secrets.token_urlsafe(32)``),
  is returned once by ``add`` and stored through ``app.storage.secret_box`` (sealed with the configured key, or
  as-is without one); ``signing_secret`` opens it for the worker. Nothing here validates URLs or filters: the
  command does (``app.webhooks.subscriptions``).
- Removing a webhook deletes its deliveries and their attempts (ON DELETE CASCADE).
- Rows are returned as plain values usable after the session closes. The repository flushes, never commits.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.domain import utc_now
from app.events import Subscription
from app.storage.models import WebhookModel
from app.storage.secret_box import open_secret, seal

SECRET_PREFIX = "whsec_"
WEBHOOK_ID_BYTES = 6


@dataclass(frozen=True, slots=True)
class WebhookRow:
    """One webhook as stored (without its secret)."""

    webhook_id: str
    url: str
    events: tuple[str, ...]
    exchanges: tuple[str, ...]
    symbols: tuple[str, ...]
    horizon: str
    top_n: int
    created_at: datetime

    @property
    def subscription(self) -> Subscription:
        """The filters the outbox applies to each published run."""
        return Subscription(
            webhook_id=self.webhook_id,
            events=frozenset(self.events),
            exchanges=self.exchanges,
            symbols=self.symbols,
            horizon=self.horizon,
            top_n=self.top_n,
        )


class WebhookRepository:
    """Adds, lists, removes webhooks and opens their secrets within the caller's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(
        self,
        *,
        url: str,
        events: Sequence[str],
        exchanges: Sequence[str] = (),
        symbols: Sequence[str] = (),
        horizon: str = "",
        top_n: int = 10,
        key: bytes | None,
        created_at: datetime | None = None,
    ) -> tuple[WebhookRow, str]:
        """A new webhook: returns its row and its signing secret (shown once; stored sealed or as-is)."""
        webhook_id = secrets.token_hex(WEBHOOK_ID_BYTES)
        secret = f"{SECRET_PREFIX}{secrets.token_urlsafe(32)}"
        row = WebhookModel(
            webhook_id=webhook_id,
            url=url,
            events=list(events),
            exchanges=list(exchanges),
            symbols=list(symbols),
            horizon=horizon,
            top_n=top_n,
            secret=seal(secret, key=key, context=webhook_id),
            created_at=created_at or utc_now(),
        )
        self._session.add(row)
        self._session.flush()
        return _to_row(row), secret

    def get(self, webhook_id: str) -> WebhookRow | None:
        """The webhook with this id, or None."""
        row = self._session.get(WebhookModel, webhook_id)
        return None if row is None else _to_row(row)

    def list(self) -> builtins.list[WebhookRow]:
        """Every webhook, oldest first."""
        rows = self._session.execute(select(WebhookModel).order_by(WebhookModel.created_at, WebhookModel.webhook_id))
        return [_to_row(row) for row in rows.scalars()]

    def remove(self, webhook_id: str) -> bool:
        """Delete the webhook with its deliveries; False when there is none with this id."""
        result = self._session.execute(delete(WebhookModel).where(WebhookModel.webhook_id == webhook_id))
        self._session.flush()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def subscriptions(self, *, exchange: str) -> builtins.list[Subscription]:
        """The subscriptions a run of ``exchange`` concerns."""
        return [row.subscription for row in self.list() if row.subscription.wants_exchange(exchange)]

    def signing_secret(self, webhook_id: str, *, key: bytes | None) -> str:
        """The webhook's signing secret (``SecretUnreadableError`` when ``key`` cannot open it)."""
        stored = self._session.execute(
            select(WebhookModel.secret).where(WebhookModel.webhook_id == webhook_id)
        ).scalar_one()
        return open_secret(stored, key=key, context=webhook_id)


def _to_row(row: WebhookModel) -> WebhookRow:
    return WebhookRow(
        webhook_id=row.webhook_id,
        url=row.url,
        events=tuple(row.events),
        exchanges=tuple(row.exchanges),
        symbols=tuple(row.symbols),
        horizon=row.horizon,
        top_n=row.top_n,
        created_at=row.created_at,
    )
