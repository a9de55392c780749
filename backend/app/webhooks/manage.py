"""What ``dantaro webhooks`` does: check a new subscription, store it, and send a test delivery now.

Invariants: every check raises ``UsageError`` with what to write instead (one line, exit 2): the URL's form and its
addresses (``app.webhooks.addresses``), events among ``run.published``, ``label.changed``, ``level.broken``,
exchanges among ``DANTARO_EXCHANGES``, a served horizon, symbols as ``BTC`` (any quote) or a pair (``BTC/USDT``,
``BTC-USDT``, ``KRW-BTC``: stored as ``BASE/QUOTE``), 1 to 100 recommendations in ``run.published``. Under
``DANTARO_ENV=production`` a webhook is added only when ``DANTARO_WEBHOOK_SECRETS_KEY`` is set (secrets sealed).
"""

from __future__ import annotations

import asyncio
import re

from app.config import Settings, webhook_key_bytes
from app.domain import symbol_candidates
from app.errors import UsageError
from app.events import SUBSCRIBABLE, Event, EventType
from app.storage.db import make_engine, make_session_factory, unit_of_work
from app.storage.outbox import enqueue
from app.storage.webhooks import WebhookRepository, WebhookRow
from app.webhooks.addresses import Lookup, check_url, system_lookup
from app.webhooks.dispatcher import AttemptOutcome, WebhookDispatcher

MAX_TOP_N = 100
_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}([/_-][A-Z0-9]{1,20})?$")


def _items(text: str) -> list[str]:
    return list(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))


def parse_events(text: str) -> tuple[str, ...]:
    """The subscribed events of ``--events`` (comma list, at least one)."""
    known = [str(event) for event in SUBSCRIBABLE]
    events = _items(text)
    unknown = [event for event in events if event not in known]
    if unknown or not events:
        raise UsageError(f"--events {text!r}: write a comma list of {', '.join(known)}")
    return tuple(events)


def parse_exchanges(text: str | None, settings: Settings) -> tuple[str, ...]:
    """The exchanges of ``--exchange`` (empty: every one), each one the deployment serves."""
    exchanges = [item.lower() for item in _items(text or "")]
    unknown = [exchange for exchange in exchanges if exchange not in settings.exchanges]
    if unknown:
        raise UsageError(f"--exchange {', '.join(unknown)} is not served; DANTARO_EXCHANGES is {settings.exchanges}")
    return tuple(exchanges)


def parse_symbols(text: str | None) -> tuple[str, ...]:
    """The symbols of ``--symbols`` (empty: every one): bases as written, pairs as ``BASE/QUOTE``."""
    symbols = []
    for item in _items((text or "").upper()):
        if not _SYMBOL.match(item):
            raise UsageError(f"--symbols {item!r} is not a symbol; write e.g. BTC,ETH or BTC/USDT")
        symbols.append(symbol_candidates(item, default_quote="USDT")[0] if not item.isalnum() else item)
    return tuple(dict.fromkeys(symbols))


def parse_horizon(text: str | None, settings: Settings) -> str:
    """The horizon of ``--horizon`` (empty: each run's default), one the deployment serves."""
    served = [horizon.name for horizon in settings.served_horizons]
    horizon = (text or "").strip()
    if horizon and horizon not in served:
        raise UsageError(f"--horizon {horizon!r} is not served; use one of {', '.join(served)}")
    return horizon


def check_top_n(top_n: int) -> int:
    """``--top-n`` within 1..100."""
    if not 1 <= top_n <= MAX_TOP_N:
        raise UsageError(f"--top-n must be 1 to {MAX_TOP_N}, not {top_n}")
    return top_n


def add_webhook(
    settings: Settings,
    *,
    url: str,
    events: str,
    exchanges: str | None = None,
    symbols: str | None = None,
    horizon: str | None = None,
    top_n: int = 10,
    lookup: Lookup = system_lookup,
) -> tuple[WebhookRow, str]:
    """Check and store a webhook; returns it and its signing secret (the only time the secret is shown)."""
    key = webhook_key_bytes(settings)
    if key is None and settings.env == "production":
        raise UsageError(
            "DANTARO_ENV=production stores webhook secrets sealed: set DANTARO_WEBHOOK_SECRETS_KEY "
            "(see docs/configuration.md)"
        )
    subscribed = parse_events(events)
    filters = (parse_exchanges(exchanges, settings), parse_symbols(symbols), parse_horizon(horizon, settings))
    check_top_n(top_n)
    asyncio.run(check_url(url, allow_private=settings.webhook_allow_private_urls, lookup=lookup))
    with unit_of_work(settings.resolved_database_url) as session:
        return WebhookRepository(session).add(
            url=url,
            events=subscribed,
            exchanges=filters[0],
            symbols=filters[1],
            horizon=filters[2],
            top_n=top_n,
            key=key,
        )


def send_test(settings: Settings, webhook_id: str, *, lookup: Lookup = system_lookup) -> AttemptOutcome:
    """Queue a ``webhook.test`` delivery to the webhook and attempt it once, now (not retried)."""
    engine = make_engine(settings.resolved_database_url)
    try:
        session_factory = make_session_factory(engine)
        with session_factory.begin() as session:
            if WebhookRepository(session).get(webhook_id) is None:
                raise UsageError(f"no webhook with id {webhook_id!r}; see `dantaro webhooks list`")
            data = {"webhook_id": webhook_id, "message": "a test delivery from `dantaro webhooks test`"}
            delivery_id = enqueue(session, webhook_id=webhook_id, event=Event(EventType.TEST, data), run_id=None)
        dispatcher = WebhookDispatcher(session_factory=session_factory, settings=settings, lookup=lookup)
        outcome = asyncio.run(dispatcher.attempt_now(delivery_id, final=True))
    finally:
        engine.dispose()
    if outcome is None:  # claimed by a worker between the insert and the attempt
        raise UsageError(f"delivery {delivery_id} was taken by a worker; see `dantaro webhooks deliveries`")
    return outcome
