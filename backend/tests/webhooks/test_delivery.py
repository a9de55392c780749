"""Delivery to a real loopback receiver on SQLite and PostgreSQL (and the in-process and Redis caches): signed POSTs,
retries with one delivery id, the retry window, addresses refused at delivery time (DNS rebinding), and no event for
a run that rolled back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import text

from app.domain import DeliveryState
from app.events import Event, EventType
from app.storage.cache import SnapshotCache
from app.storage.outbox import enqueue
from app.storage.publish import publish
from app.storage.runs import RunRepository
from app.webhooks.dispatcher import WebhookDispatcher
from tests.support.snapshots import MakeSnapshot
from tests.support.storage import StorageBackend
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import add_hook, attempts, deliver_until, deliveries, hook_settings, table_lookup


async def test_a_run_is_delivered_signed_and_retried_after_two_500s_with_one_delivery_id(
    backend: StorageBackend, cache: SnapshotCache, make_snapshot: MakeSnapshot
) -> None:
    settings = hook_settings()
    factory = backend.session_factory
    with WebhookReceiver(statuses=[500, 500]) as receiver:
        hook, secret = add_hook(factory, settings, url=receiver.url, events=["run.published"], top_n=3)
        snapshot = make_snapshot(run_id="run-a")
        publish(snapshot, session_factory=factory, cache=cache)
        (pending,) = deliveries(factory)
        assert (pending.state, pending.run_id, pending.event) == (DeliveryState.PENDING, "run-a", "run.published")
        dispatcher = WebhookDispatcher(session_factory=factory, settings=settings)
        await deliver_until(
            dispatcher, lambda: deliveries(factory)[0].state is DeliveryState.DELIVERED, timeout_s=20, what="delivery"
        )
        requests = receiver.verified(secret)  # every attempt carries a valid signature
    assert [r.headers["dantaro-attempt"] for r in requests] == ["1", "2", "3"]
    assert {r.delivery_id for r in requests} == {pending.delivery_id}  # the idempotency key never changes
    assert {r.body for r in requests} == {requests[0].body}
    assert {r.headers["dantaro-event"] for r in requests} == {"run.published"}
    body = requests[0].json
    assert (body["event"], body["delivery_id"]) == ("run.published", pending.delivery_id)
    assert body["data"]["run_id"] == "run-a"
    top = body["data"]["top"]
    assert [item["symbol"] for item in top] == [rec.symbol for rec in snapshot.recommendations[:3]]
    assert body["data"]["as_of"] == snapshot.data_as_of.isoformat()
    tried = attempts(factory, pending.delivery_id)
    assert [(a.attempt, a.status) for a in tried] == [(1, 500), (2, 500), (3, 200)]
    assert tried[0].error is not None and tried[0].error.startswith("HTTP 500") and tried[2].error is None
    assert all(a.latency_ms > 0 for a in tried)
    # exponential backoff: 0.2 s after the first failure, 0.4 s after the second
    assert tried[1].started_at - tried[0].started_at >= timedelta(seconds=0.2)
    assert tried[2].started_at - tried[1].started_at >= timedelta(seconds=0.4)
    assert hook.webhook_id == deliveries(factory)[0].webhook_id


async def test_a_receiver_that_keeps_failing_ends_failed_after_the_retry_window(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    settings = hook_settings(webhook_retry_base_s=0.1, webhook_retry_window_s=0.5)
    factory = backend.session_factory
    with WebhookReceiver(default_status=503) as receiver:
        add_hook(factory, settings, url=receiver.url, events=["run.published"])
        publish(make_snapshot(run_id="run-f"), session_factory=factory, cache=None)
        dispatcher = WebhookDispatcher(session_factory=factory, settings=settings)
        await deliver_until(
            dispatcher, lambda: deliveries(factory)[0].state is DeliveryState.FAILED, timeout_s=20, what="failed"
        )
        sent = len(receiver.requests)
        assert (await dispatcher.run_pass()).outcomes == ()  # a failed delivery is never claimed again
    (failed,) = deliveries(factory)
    assert failed.attempts == sent >= 2 and failed.last_status == 503 and failed.finished_at is not None
    assert failed.finished_at - failed.created_at <= timedelta(seconds=0.5 + 5)


@pytest.mark.parametrize(
    ("host", "names", "error"),
    [
        ("hooks.example", {"hooks.example": ["127.0.0.1"]}, "hooks.example resolves to 127.0.0.1, a loopback address"),
        (
            "hooks.example",
            {"hooks.example": ["93.184.216.34", "10.1.2.3"]},
            "hooks.example resolves to 10.1.2.3, a private address",
        ),
        ("127.0.0.1", {}, "127.0.0.1 is a loopback address"),
    ],
)
async def test_addresses_are_checked_again_at_delivery(
    backend: StorageBackend, make_snapshot: MakeSnapshot, host: str, names: dict[str, list[str]], error: str
) -> None:
    """A name that pointed to a public address when added and to a private one now (DNS rebinding) is refused."""
    settings = hook_settings(webhook_allow_private_urls=False)
    factory = backend.session_factory
    with WebhookReceiver() as receiver:
        add_hook(factory, settings, url=f"http://{host}:{receiver.port}/hook", events=["run.published"])
        publish(make_snapshot(run_id="run-r"), session_factory=factory, cache=None)
        dispatcher = WebhookDispatcher(session_factory=factory, settings=settings, lookup=table_lookup(names))
        (outcome,) = (await dispatcher.run_pass()).outcomes
        assert receiver.requests == []
    assert (outcome.attempt.status, outcome.attempt.error) == (None, f"refused: {error}")
    assert outcome.state is DeliveryState.PENDING  # retried later: the name may point elsewhere again


async def test_the_guarded_resolver_is_what_connects(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    """With private addresses allowed, a name the table maps to the receiver reaches it with its own Host."""
    settings = hook_settings()
    factory = backend.session_factory
    with WebhookReceiver() as receiver:
        url = f"http://hooks.example:{receiver.port}/in"
        _, secret = add_hook(factory, settings, url=url, events=["run.published"])
        publish(make_snapshot(run_id="run-h"), session_factory=factory, cache=None)
        lookup = table_lookup({"hooks.example": ["127.0.0.1"]})
        dispatcher = WebhookDispatcher(session_factory=factory, settings=settings, lookup=lookup)
        (outcome,) = (await dispatcher.run_pass()).outcomes
        (request,) = receiver.verified(secret)
    assert outcome.state is DeliveryState.DELIVERED
    assert (request.path, request.headers["host"]) == ("/in", f"hooks.example:{receiver.port}")


@pytest.fixture
def refused_finish(backend: StorageBackend) -> Iterator[None]:
    """A trigger that makes the database refuse a run's final status: publish fails at its last write."""
    if backend.name == "sqlite":
        create = [
            "CREATE TRIGGER refuse_finish BEFORE UPDATE OF status ON analysis_runs "
            "WHEN NEW.status IN ('succeeded', 'partial') BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ]
        drop = ["DROP TRIGGER IF EXISTS refuse_finish"]
    else:
        create = [
            "CREATE FUNCTION refuse_finish() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            "CREATE TRIGGER refuse_finish BEFORE UPDATE OF status ON analysis_runs FOR EACH ROW "
            "WHEN (NEW.status IN ('succeeded', 'partial')) EXECUTE FUNCTION refuse_finish()",
        ]
        drop = ["DROP TRIGGER IF EXISTS refuse_finish ON analysis_runs", "DROP FUNCTION IF EXISTS refuse_finish()"]
    with backend.engine.begin() as connection:
        for statement in create:
            connection.execute(text(statement))
    yield
    with backend.engine.begin() as connection:
        for statement in drop:
            connection.execute(text(statement))


async def test_a_run_that_rolls_back_raises_no_event(
    backend: StorageBackend, make_snapshot: MakeSnapshot, refused_finish: None
) -> None:
    settings = hook_settings()
    factory = backend.session_factory
    with WebhookReceiver() as receiver:
        add_hook(factory, settings, url=receiver.url, events=["run.published", "label.changed", "level.broken"])
        with pytest.raises(Exception, match="refused by the test"):
            publish(make_snapshot(run_id="run-x"), session_factory=factory, cache=None)
        assert deliveries(factory) == []
        assert (await WebhookDispatcher(session_factory=factory, settings=settings).run_pass()).outcomes == ()
        assert receiver.requests == []
    with factory() as session:
        assert RunRepository(session).latest_run_id(exchange="binance") is None


async def test_a_delivery_whose_webhook_was_removed_meanwhile_is_dropped_quietly(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    settings = hook_settings()
    factory = backend.session_factory
    with WebhookReceiver() as receiver:
        hook, _ = add_hook(factory, settings, url=receiver.url, events=["run.published"])
        publish(make_snapshot(run_id="run-d"), session_factory=factory, cache=None)
        receiver.hold()
        dispatcher = WebhookDispatcher(session_factory=factory, settings=settings)
        sending = asyncio.create_task(dispatcher.run_pass())
        await asyncio.to_thread(receiver.arrived.wait, 10)
        with factory.begin() as session:
            session.execute(text("DELETE FROM webhooks WHERE webhook_id = :id"), {"id": hook.webhook_id})
        receiver.release()
        (outcome,) = (await sending).outcomes
    assert outcome.state is DeliveryState.DELIVERED and deliveries(factory) == []


def test_bodies_are_json_with_the_event_and_delivery_id(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    settings = hook_settings()
    factory = backend.session_factory
    add_hook(factory, settings, url="http://127.0.0.1:9/hook", events=["run.published"])
    publish(make_snapshot(run_id="run-j"), session_factory=factory, cache=None)
    with factory() as session:
        (body,) = session.execute(text("SELECT body FROM webhook_deliveries")).scalars()
    parsed = json.loads(body)
    assert set(parsed) == {"event", "delivery_id", "created_at", "data"}
    assert parsed["delivery_id"] == deliveries(factory)[0].delivery_id


async def test_a_secret_the_worker_cannot_open_fails_the_attempt_and_sends_nothing(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    factory = backend.session_factory
    with WebhookReceiver() as receiver:
        add_hook(factory, hook_settings(), url=receiver.url, events=["run.published"])
        publish(make_snapshot(run_id="run-k"), session_factory=factory, cache=None)
        other_key = hook_settings()  # the worker runs with another DANTARO_WEBHOOK_SECRETS_KEY
        (outcome,) = (await WebhookDispatcher(session_factory=factory, settings=other_key).run_pass()).outcomes
        assert receiver.requests == []
    assert outcome.attempt.error is not None
    assert outcome.attempt.error.startswith("signing secret unreadable: the secret was sealed with key")
    assert outcome.state is DeliveryState.PENDING


async def test_a_pass_sends_in_rounds_of_the_concurrency(backend: StorageBackend) -> None:
    settings = hook_settings(webhook_concurrency=2)
    factory = backend.session_factory
    with WebhookReceiver(delay_s=0.2) as receiver:
        hook, secret = add_hook(factory, settings, url=receiver.url, events=["run.published"])
        with factory.begin() as session:
            for n in range(5):
                enqueue(session, webhook_id=hook.webhook_id, event=Event(EventType.TEST, {"n": n}), run_id=None)
        result = await WebhookDispatcher(session_factory=factory, settings=settings).run_pass()
        requests = receiver.verified(secret)
    assert len(result.outcomes) == len(requests) == 5 and receiver.max_in_flight == 2
    assert {outcome.state for outcome in result.outcomes} == {DeliveryState.DELIVERED}


async def test_a_pass_attempts_each_delivery_once_even_when_it_is_due_again(backend: StorageBackend) -> None:
    settings = hook_settings(webhook_concurrency=1, webhook_retry_base_s=0.001)  # due again before the next round
    factory = backend.session_factory
    with WebhookReceiver(default_status=500, delay_s=0.05) as receiver:
        hook, _ = add_hook(factory, settings, url=receiver.url, events=["run.published"])
        with factory.begin() as session:
            for n in range(2):
                enqueue(session, webhook_id=hook.webhook_id, event=Event(EventType.TEST, {"n": n}), run_id=None)
        result = await WebhookDispatcher(session_factory=factory, settings=settings).run_pass()
    assert len(result.outcomes) == len(receiver.requests) == 2
    assert len({request.delivery_id for request in receiver.requests}) == 2
