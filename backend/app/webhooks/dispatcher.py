"""Sending the outbox: the worker's ``webhooks`` job claims due deliveries and POSTs them, signed.

Invariants:
- One pass attempts at most ``BATCH`` due deliveries, in rounds of ``DANTARO_WEBHOOK_CONCURRENCY`` sent at once: a
  round is claimed (``DeliveryRepository.claim_due``, leased for ``lease_s`` = twice the timeout plus 5 s) when the
  previous one is done, and each request is bounded by ``DANTARO_WEBHOOK_TIMEOUT_S`` (connect, send and response
  headers together), so a round always ends within its lease and no other worker claims its deliveries meanwhile.
- Each attempt: the body stored in the outbox, unchanged; a fresh timestamp and signature (``app.webhooks.signing``);
  no redirects followed, no proxy from the environment, addresses checked on every connection
  (``app.webhooks.addresses``). A 2xx delivers; anything else (status, refused address, network error, timeout,
  an unreadable secret) is a failed attempt, retried per ``RetryPolicy`` or ``failed`` when the window is over.
- Every attempt is stored with the delivery's new state in one transaction and logged as ``webhook_attempt``
  (status, latency_ms, error); the body and the secret are never logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import structlog
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, webhook_key_bytes
from app.domain import DeliveryState, utc_now
from app.storage.outbox import Attempt, DeliveryRepository, DueDelivery
from app.storage.secret_box import SecretUnreadableError, open_secret
from app.webhooks.addresses import (
    GuardedResolver,
    Lookup,
    RefusedAddressError,
    literal_refusal,
    split_url,
    system_lookup,
)
from app.webhooks.retry import RetryPolicy
from app.webhooks.signing import delivery_headers

log = structlog.get_logger(__name__)

BATCH = 100
RESPONSE_SNIPPET_BYTES = 200  # of a non-2xx response body, kept in the attempt's error


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one attempt did to its delivery."""

    delivery_id: str
    webhook_id: str
    event: str
    attempt: Attempt
    state: DeliveryState
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class DispatchPass:
    """The attempts of one pass by the state they left their delivery in."""

    outcomes: tuple[AttemptOutcome, ...] = ()


class WebhookDispatcher:
    """Claims due deliveries and sends them; ``clock`` (Unix seconds) stamps the signatures."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        settings: Settings,
        lookup: Lookup = system_lookup,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session_factory = session_factory
        self.key = webhook_key_bytes(settings)
        self.policy = RetryPolicy.from_settings(settings)
        self.concurrency = settings.webhook_concurrency
        self.timeout_s = settings.webhook_timeout_s
        self.allow_private = settings.webhook_allow_private_urls
        self.lookup = lookup
        self.clock = clock

    @property
    def lease_s(self) -> float:
        """How long a claim keeps a delivery from other passes: twice the timeout plus 5 s."""
        return 2 * self.timeout_s + 5

    async def run_pass(self) -> DispatchPass:
        """Attempt the due deliveries once each (at most ``BATCH``), in rounds of ``concurrency``: each round is
        claimed only when the previous one is done, so it is sent well within its lease."""
        outcomes: list[AttemptOutcome] = []
        started_at = utc_now()  # only what was due when the pass began: a delivery is attempted once per pass
        while len(outcomes) < BATCH:
            limit = min(self.concurrency, BATCH - len(outcomes))
            due = await asyncio.to_thread(self._claim, None, limit, started_at)
            if not due:
                break
            outcomes.extend(await self._send_all(due))
        return DispatchPass(tuple(outcomes))

    async def attempt_now(self, delivery_id: str, *, final: bool) -> AttemptOutcome | None:
        """Attempt one pending delivery now (``final``: no retry after a failure); None when it is not pending."""
        due = await asyncio.to_thread(self._claim, delivery_id, 1, utc_now())
        if not due:
            return None
        (outcome,) = await self._send_all(due, final=final)
        return outcome

    def _claim(self, delivery_id: str | None, limit: int, due_by: datetime) -> list[DueDelivery]:
        lease_until = utc_now() + timedelta(seconds=self.lease_s)
        with self.session_factory.begin() as session:
            return DeliveryRepository(session).claim_due(
                now=due_by, lease_until=lease_until, limit=limit, delivery_id=delivery_id
            )

    async def _send_all(self, due: Sequence[DueDelivery], *, final: bool = False) -> list[AttemptOutcome]:
        """Attempt ``due`` (at most ``concurrency`` of them) at once on one connection pool."""
        connector = aiohttp.TCPConnector(
            limit=self.concurrency,
            resolver=GuardedResolver(allow_private=self.allow_private, lookup=self.lookup),
            use_dns_cache=False,
        )
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as http:
            return list(await asyncio.gather(*(self._attempt(http, one, final=final) for one in due)))

    async def _attempt(self, http: aiohttp.ClientSession, delivery: DueDelivery, *, final: bool) -> AttemptOutcome:
        started_at, started_s = utc_now(), time.monotonic()
        number = delivery.attempts + 1
        status: int | None = None
        error: str | None
        try:
            secret = open_secret(delivery.sealed_secret, key=self.key, context=delivery.webhook_id)
        except SecretUnreadableError as exc:
            error = f"signing secret unreadable: {exc}"
        else:
            headers = delivery_headers(
                secret=secret,
                body=delivery.body,
                event=delivery.event,
                delivery_id=delivery.delivery_id,
                attempt=number,
                timestamp_s=int(self.clock()),
            )
            status, error = await self._post(http, delivery.url, delivery.body, headers)
        attempt = Attempt(number, started_at, status, round((time.monotonic() - started_s) * 1000, 3), error)
        outcome = self._judge(delivery, attempt, final=final)
        await asyncio.shield(asyncio.to_thread(self._record, outcome))
        _log_attempt(outcome)
        return outcome

    async def _post(
        self, http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        """The response status and, when it is not a 2xx or there is none, what went wrong."""
        refusal = literal_refusal(split_url(url)[0], allow_private=self.allow_private)
        if refusal is not None:
            return None, f"refused: {refusal}"
        try:
            async with http.post(url, data=body, headers=headers, allow_redirects=False) as response:
                return response.status, await _failure(response)
        except TimeoutError:
            return None, f"no response within {self.timeout_s:g} s"
        except aiohttp.ClientError as exc:
            return None, _client_error(exc)

    def _judge(self, delivery: DueDelivery, attempt: Attempt, *, final: bool) -> AttemptOutcome:
        next_at: datetime | None = None
        if attempt.status is not None and attempt.error is None:
            state = DeliveryState.DELIVERED
        else:
            next_at = (
                None
                if final
                else self.policy.next_attempt_at(
                    failed_attempts=attempt.attempt, created_at=delivery.created_at, now=utc_now()
                )
            )
            state = DeliveryState.FAILED if next_at is None else DeliveryState.PENDING
        return AttemptOutcome(delivery.delivery_id, delivery.webhook_id, delivery.event, attempt, state, next_at)

    def _record(self, outcome: AttemptOutcome) -> None:
        with self.session_factory.begin() as session:
            stored = DeliveryRepository(session).record_attempt(
                outcome.delivery_id, outcome.attempt, state=outcome.state, next_attempt_at=outcome.next_attempt_at
            )
        if not stored:
            log.info("webhook_delivery_gone", delivery_id=outcome.delivery_id, webhook_id=outcome.webhook_id)


async def _failure(response: aiohttp.ClientResponse) -> str | None:
    """None for a 2xx; else the status and the start of the response body."""
    if 200 <= response.status < 300:
        return None
    text = (await response.content.read(RESPONSE_SNIPPET_BYTES)).decode("utf-8", "replace").strip()
    return f"HTTP {response.status}" + (f": {text}" if text else "")


def _client_error(exc: aiohttp.ClientError) -> str:
    """A connection or protocol failure on one line (a refused address says so)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, RefusedAddressError):
            return f"refused: {exc.os_error}"
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    return f"{type(exc).__name__}: {exc}"


def _log_attempt(outcome: AttemptOutcome) -> None:
    attempt = outcome.attempt
    emit = log.info if outcome.state is DeliveryState.DELIVERED else log.warning
    emit(
        "webhook_attempt",
        delivery_id=outcome.delivery_id,
        webhook_id=outcome.webhook_id,
        webhook_event=outcome.event,
        attempt=attempt.attempt,
        status=attempt.status,
        latency_ms=attempt.latency_ms,
        error=attempt.error,
        state=str(outcome.state),
        next_attempt_at=None if outcome.next_attempt_at is None else outcome.next_attempt_at.isoformat(),
    )
