"""The webhook outbox: deliveries written in the publishing transaction, then attempted by the worker.

Invariants:
- ``enqueue_run_events`` runs inside ``publish``'s transaction, after the run's rows: a run that does not commit
  leaves no delivery, and a committed run has every delivery its subscriptions asked for (no event is lost between
  the publish and the worker). It reads nothing and writes nothing when no webhook concerns the exchange.
- A delivery is one event for one webhook. Its ``delivery_id`` (a UUID, the ``Dantaro-Delivery`` header, the
  receiver's idempotency key) and its ``body`` (the exact bytes every attempt POSTs) never change; the body is
  ``{"event", "delivery_id", "created_at", "data"}`` serialised once with orjson.
- A worker claims due deliveries (``claim_due``) by moving ``next_attempt_at`` to the end of a lease, so several
  workers never send one delivery at once, and one that died mid-attempt leaves it due again when the lease ends
  (delivery is at least once; the receiver deduplicates by ``Dantaro-Delivery``).
- States: ``pending`` (due at ``next_attempt_at``) → ``delivered`` (a 2xx) or ``failed`` (retries exhausted). Every
  attempt is a ``webhook_attempts`` row (number, start, HTTP status or error, latency), written with the delivery's
  new state in one transaction by ``record_attempt``.
- The repository flushes, never commits. Datetimes are aware UTC.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.domain import Candle, DeliveryState, Snapshot, timeframe_ms, utc_now
from app.events import NEEDS_PREVIOUS, Event, EventType, candle_window, run_events
from app.storage.models import CandleModel, WebhookAttemptModel, WebhookDeliveryModel, WebhookModel
from app.storage.runs import RunRepository
from app.storage.webhooks import WebhookRepository


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A pending delivery whose next attempt is due, with what sending it needs."""

    delivery_id: str
    webhook_id: str
    event: str
    body: bytes
    attempts: int
    created_at: datetime
    url: str
    sealed_secret: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of a delivery: its number (1 = first), start, HTTP status (None: no response) or error, latency."""

    attempt: int
    started_at: datetime
    status: int | None
    latency_ms: float
    error: str | None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One delivery as stored, for ``dantaro webhooks deliveries``."""

    delivery_id: str
    webhook_id: str
    event: str
    run_id: str | None
    state: DeliveryState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    finished_at: datetime | None


def enqueue_run_events(session: Session, snapshot: Snapshot, *, now: datetime | None = None) -> int:
    """Write the deliveries the published ``snapshot`` raises (call after its rows); returns how many."""
    subscriptions = WebhookRepository(session).subscriptions(exchange=snapshot.exchange)
    if not subscriptions:
        return 0
    previous: Snapshot | None = None
    if any(subscription.events & NEEDS_PREVIOUS for subscription in subscriptions):
        runs = RunRepository(session)
        previous_id = runs.latest_run_id(exchange=snapshot.exchange, excluding=snapshot.run_id)
        previous = None if previous_id is None else runs.published_snapshot(run_id=previous_id)
    candles: Mapping[str, Sequence[Candle]] = {}
    if previous is not None and any(EventType.LEVEL_BROKEN in s.events for s in subscriptions):
        candles = _window_candles(session, previous=previous, current=snapshot)
    count = 0
    for subscription in subscriptions:
        for event in run_events(subscription, current=snapshot, previous=previous, candles=candles):
            enqueue(session, webhook_id=subscription.webhook_id, event=event, run_id=snapshot.run_id, now=now)
            count += 1
    return count


def enqueue(session: Session, *, webhook_id: str, event: Event, run_id: str | None, now: datetime | None = None) -> str:
    """Add one pending delivery of ``event`` to ``webhook_id``, due now; returns its delivery id."""
    created_at = now or utc_now()
    delivery_id = str(uuid.uuid4())
    body = {"event": str(event.type), "delivery_id": delivery_id, "created_at": created_at, "data": event.data}
    session.add(
        WebhookDeliveryModel(
            delivery_id=delivery_id,
            webhook_id=webhook_id,
            event=str(event.type),
            run_id=run_id,
            body=orjson.dumps(body).decode("utf-8"),
            state=DeliveryState.PENDING.value,
            attempts=0,
            created_at=created_at,
            next_attempt_at=created_at,
        )
    )
    session.flush()
    return delivery_id


def _window_candles(session: Session, *, previous: Snapshot, current: Snapshot) -> dict[str, list[Candle]]:
    """The candles of ``candle_window`` per symbol the previous run served levels for (one range read)."""
    window = candle_window(previous, current)
    step_ms = timeframe_ms(window.timeframe)
    rows = session.execute(
        select(CandleModel)
        .where(
            CandleModel.exchange == current.exchange,
            CandleModel.timeframe == window.timeframe,
            CandleModel.symbol.in_(sorted(previous.levels)),
            CandleModel.open_time_ms >= window.since_ms,
            CandleModel.open_time_ms <= window.until_ms - step_ms,
        )
        .order_by(CandleModel.symbol, CandleModel.open_time_ms)
    ).scalars()
    result: dict[str, list[Candle]] = {}
    for row in rows:
        result.setdefault(row.symbol, []).append(
            Candle(row.open_time_ms, row.open, row.high, row.low, row.close, row.volume)
        )
    return result


class DeliveryRepository:
    """Reads due deliveries, records attempts and lists deliveries within the caller's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def claim_due(
        self, *, now: datetime, lease_until: datetime, limit: int, delivery_id: str | None = None
    ) -> list[DueDelivery]:
        """Claim pending deliveries due by ``now`` (the longest waiting first, at most ``limit``; one when
        ``delivery_id`` is given) by moving their ``next_attempt_at`` to ``lease_until``; returns them.

        On PostgreSQL the rows are read ``FOR UPDATE SKIP LOCKED``, so concurrent workers claim disjoint sets; a
        claim whose worker dies is due again at ``lease_until``.
        """
        due = select(WebhookDeliveryModel.delivery_id).where(
            WebhookDeliveryModel.state == DeliveryState.PENDING.value, WebhookDeliveryModel.next_attempt_at <= now
        )
        if delivery_id is not None:
            due = due.where(WebhookDeliveryModel.delivery_id == delivery_id)
        due = due.order_by(WebhookDeliveryModel.next_attempt_at, WebhookDeliveryModel.delivery_id).limit(limit)
        claimed = list(self._session.execute(due.with_for_update(skip_locked=True)).scalars())
        if not claimed:
            return []
        self._session.execute(
            update(WebhookDeliveryModel)
            .where(WebhookDeliveryModel.delivery_id.in_(claimed))
            .values(next_attempt_at=lease_until)
        )
        rows = self._session.execute(
            select(WebhookDeliveryModel, WebhookModel.url, WebhookModel.secret)
            .join(WebhookModel, WebhookModel.webhook_id == WebhookDeliveryModel.webhook_id)
            .where(WebhookDeliveryModel.delivery_id.in_(claimed))
            .order_by(WebhookDeliveryModel.created_at, WebhookDeliveryModel.delivery_id)
        ).all()
        self._session.flush()
        return [_due(row, url, secret) for row, url, secret in rows]

    def record_attempt(
        self, delivery_id: str, attempt: Attempt, *, state: DeliveryState, next_attempt_at: datetime | None
    ) -> bool:
        """Store ``attempt`` and the delivery's new state; False when the delivery is gone (webhook removed)."""
        row = self._session.get(WebhookDeliveryModel, delivery_id)
        if row is None:
            return False
        self._session.add(
            WebhookAttemptModel(
                delivery_id=delivery_id,
                attempt=attempt.attempt,
                started_at=attempt.started_at,
                status=attempt.status,
                latency_ms=attempt.latency_ms,
                error=attempt.error,
            )
        )
        row.attempts = attempt.attempt
        row.last_attempt_at = attempt.started_at
        row.last_status = attempt.status
        row.last_error = attempt.error
        row.state = state.value
        if next_attempt_at is not None:
            row.next_attempt_at = next_attempt_at
        if state is not DeliveryState.PENDING:
            row.finished_at = attempt.started_at
        self._session.flush()
        return True

    def recent(
        self, *, webhook_id: str | None = None, state: DeliveryState | None = None, limit: int = 20
    ) -> list[DeliveryRow]:
        """The newest deliveries first, optionally of one webhook and in one state."""
        stmt = select(WebhookDeliveryModel)
        if webhook_id is not None:
            stmt = stmt.where(WebhookDeliveryModel.webhook_id == webhook_id)
        if state is not None:
            stmt = stmt.where(WebhookDeliveryModel.state == state.value)
        stmt = stmt.order_by(WebhookDeliveryModel.created_at.desc(), WebhookDeliveryModel.delivery_id).limit(limit)
        return [_delivery_row(row) for row in self._session.execute(stmt).scalars()]

    def attempts(self, delivery_ids: Sequence[str]) -> dict[str, list[Attempt]]:
        """Every attempt of each delivery, in order (every id is a key)."""
        result: dict[str, list[Attempt]] = {delivery_id: [] for delivery_id in delivery_ids}
        rows = self._session.execute(
            select(WebhookAttemptModel)
            .where(WebhookAttemptModel.delivery_id.in_(list(delivery_ids)))
            .order_by(WebhookAttemptModel.delivery_id, WebhookAttemptModel.attempt)
        ).scalars()
        for row in rows:
            result[row.delivery_id].append(Attempt(row.attempt, row.started_at, row.status, row.latency_ms, row.error))
        return result


def _due(row: WebhookDeliveryModel, url: str, secret: str) -> DueDelivery:
    return DueDelivery(
        delivery_id=row.delivery_id,
        webhook_id=row.webhook_id,
        event=row.event,
        body=row.body.encode("utf-8"),
        attempts=row.attempts,
        created_at=row.created_at,
        url=url,
        sealed_secret=secret,
    )


def _delivery_row(row: WebhookDeliveryModel) -> DeliveryRow:
    return DeliveryRow(
        delivery_id=row.delivery_id,
        webhook_id=row.webhook_id,
        event=row.event,
        run_id=row.run_id,
        state=DeliveryState(row.state),
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        finished_at=row.finished_at,
    )
