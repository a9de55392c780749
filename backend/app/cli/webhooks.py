"""``dantaro webhooks add|list|remove|test|deliveries``: signed webhooks in the configured database.

Invariants: ``add`` prints the signing secret once (it is stored sealed with ``DANTARO_WEBHOOK_SECRETS_KEY``, or
as-is without one, never printed again); bad input or an unknown id is a ``UsageError`` (one line, exit 2); ``test``
exits 0 when the receiver answered 2xx, else 1 with the error on one line. Each action is one unit of work.
``app.webhooks`` (aiohttp) is imported only by the actions that check or call a URL (``add``, ``test``), so every
other ``dantaro`` command starts without it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from app.cli.command import Command
from app.cli.table import aligned, when
from app.config import Settings
from app.domain import DeliveryState
from app.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.storage.outbox import Attempt, DeliveryRow
    from app.storage.webhooks import WebhookRow

MAX_LIST = 500


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    """One unit of work on the configured database (SQLAlchemy loads here, not with the CLI)."""
    from app.storage.db import unit_of_work

    with unit_of_work(settings.resolved_database_url) as session:
        yield session


def _add(args: argparse.Namespace, settings: Settings) -> int:
    from app.webhooks.manage import add_webhook

    row, secret = add_webhook(
        settings,
        url=args.url,
        events=args.events,
        exchanges=args.exchange,
        symbols=args.symbols,
        horizon=args.horizon,
        top_n=args.top_n,
    )
    print(f"created webhook {row.webhook_id} -> {row.url} ({','.join(row.events)})")
    print("signing secret (shown only now; check each Dantaro-Signature with it):")
    print(secret)
    return 0


def format_webhooks(rows: list[WebhookRow]) -> list[str]:
    """One aligned line per webhook (header first): id, events, filters, created, URL."""
    table = [("ID", "EVENTS", "EXCHANGES", "SYMBOLS", "HORIZON", "TOP", "CREATED", "URL")]
    for row in rows:
        table.append(
            (
                row.webhook_id,
                ",".join(row.events),
                ",".join(row.exchanges) or "*",
                ",".join(row.symbols) or "*",
                row.horizon or "default",
                str(row.top_n),
                when(row.created_at),
                row.url,
            )
        )
    return aligned(table)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from app.storage.webhooks import WebhookRepository

    with _session(settings) as session:
        rows = WebhookRepository(session).list()
    if not rows:
        print("no webhooks; add one with: dantaro webhooks add --url URL --events run.published")
        return 0
    print("\n".join(format_webhooks(rows)))
    return 0


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    webhook_id = args.webhook_id.strip()
    from app.storage.webhooks import WebhookRepository

    with _session(settings) as session:
        if not WebhookRepository(session).remove(webhook_id):
            raise UsageError(f"no webhook with id {webhook_id!r}; see `dantaro webhooks list`")
    print(f"removed webhook {webhook_id} and its deliveries")
    return 0


def _test(args: argparse.Namespace, settings: Settings) -> int:
    from app.webhooks.manage import send_test

    outcome = send_test(settings, args.webhook_id.strip())
    attempt = outcome.attempt
    if outcome.state is DeliveryState.DELIVERED:
        print(f"delivered: HTTP {attempt.status} in {attempt.latency_ms:.1f} ms (delivery {outcome.delivery_id})")
        return 0
    print(f"not delivered: {attempt.error} after {attempt.latency_ms:.1f} ms (delivery {outcome.delivery_id})")
    return 1


def _result(status: int | None, error: str | None) -> str:
    if error is None:
        return "-" if status is None else f"HTTP {status}"
    return error if len(error) <= 60 else error[:57] + "..."


def format_deliveries(rows: list[DeliveryRow], attempts: dict[str, list[Attempt]] | None) -> list[str]:
    """One aligned line per delivery (newest first), and each of its attempts under it when ``attempts`` is given."""
    table = [("CREATED", "DELIVERY", "WEBHOOK", "EVENT", "STATE", "ATTEMPTS", "NEXT", "LAST")]
    for row in rows:
        next_at = when(row.next_attempt_at) if row.state is DeliveryState.PENDING else "-"
        last = _result(row.last_status, row.last_error)
        identity = (when(row.created_at), row.delivery_id, row.webhook_id, row.event)
        table.append((*identity, row.state, str(row.attempts), next_at, last))
        for attempt in (attempts or {}).get(row.delivery_id, []):
            result = f"{_result(attempt.status, attempt.error)} in {attempt.latency_ms:.1f} ms"
            table.append(("", f"  #{attempt.attempt}", "", "", "", "", when(attempt.started_at), result))
    return aligned(table)


def _deliveries(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.limit <= MAX_LIST:
        raise UsageError(f"--limit must be 1 to {MAX_LIST}, not {args.limit}")
    state = DeliveryState(args.state) if args.state else None
    from app.storage.outbox import DeliveryRepository
    from app.storage.webhooks import WebhookRepository

    with _session(settings) as session:
        if args.webhook_id and WebhookRepository(session).get(args.webhook_id) is None:
            raise UsageError(f"no webhook with id {args.webhook_id!r}; see `dantaro webhooks list`")
        deliveries = DeliveryRepository(session)
        rows = deliveries.recent(webhook_id=args.webhook_id, state=state, limit=args.limit)
        attempts = deliveries.attempts([row.delivery_id for row in rows]) if args.attempts else None
    if not rows:
        print("no deliveries yet")
        return 0
    print("\n".join(format_deliveries(rows, attempts)))
    return 0


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the receiver: an http(s) URL that resolves to public addresses")
    parser.add_argument("--events", required=True, help="comma list of run.published, label.changed, level.broken")
    parser.add_argument("--exchange", help="comma list of exchanges to follow (default: every one served)")
    parser.add_argument("--symbols", help="comma list of bases (BTC) or pairs (BTC/USDT) (default: every symbol)")
    parser.add_argument("--horizon", help="the horizon whose labels and ranks are sent (default: each run's default)")
    parser.add_argument("--top-n", type=int, default=10, help="recommendations in run.published, 1..100 (default 10)")


def _id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("webhook_id", metavar="ID", help="the webhook's id (see `dantaro webhooks list`)")


def _deliveries_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("webhook_id", metavar="ID", nargs="?", help="only this webhook's deliveries")
    parser.add_argument("--state", choices=[state.value for state in DeliveryState], help="only deliveries in it")
    parser.add_argument("--limit", type=int, default=20, help="how many, newest first (default 20, at most 500)")
    parser.add_argument("--attempts", action="store_true", help="list every attempt under its delivery")


COMMAND = Command(
    name="webhooks",
    summary="add, list, remove and test signed webhooks; show their deliveries",
    actions=(
        Command(
            name="add",
            summary="add a webhook and print its signing secret (once)",
            run=_add,
            arguments=_add_arguments,
        ),
        Command(name="list", summary="list every webhook (secrets are never shown)", run=_list),
        Command(name="remove", summary="remove a webhook and its deliveries", run=_remove, arguments=_id_argument),
        Command(
            name="test",
            summary="send a signed webhook.test delivery now and print the receiver's answer",
            run=_test,
            arguments=_id_argument,
        ),
        Command(
            name="deliveries",
            summary="recent deliveries with their state, attempts, HTTP status and latency",
            run=_deliveries,
            arguments=_deliveries_arguments,
        ),
    ),
)
