"""Webhook storage on SQLite and PostgreSQL: sealed secrets, the outbox's claims and leases, removal and retention."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from app.config import webhook_key_bytes
from app.domain import DeliveryState, utc_now
from app.events import Event, EventType
from app.storage.models import WebhookAttemptModel, WebhookDeliveryModel
from app.storage.outbox import Attempt, DeliveryRepository, enqueue, enqueue_run_events
from app.storage.publish import publish
from app.storage.retention import RetentionPolicy, apply_retention
from app.storage.runs import RunRepository
from app.storage.secret_box import SecretUnreadableError, key_id, open_secret, seal
from app.storage.webhooks import WebhookRepository
from tests.support.snapshots import MakeSnapshot
from tests.support.storage import StorageBackend
from tests.support.webhooks import add_hook, deliveries, hook_settings, new_secrets_key

KEY = base64.b64decode(new_secrets_key())
OTHER_KEY = base64.b64decode(new_secrets_key())


def _stored_secret(backend: StorageBackend, webhook_id: str) -> str:
    with backend.engine.connect() as connection:
        return str(connection.execute(text(f"SELECT secret FROM webhooks WHERE webhook_id = '{webhook_id}'")).scalar())


def test_a_secret_is_stored_sealed_and_opens_only_with_its_key_and_row(backend: StorageBackend) -> None:
    with backend.session_factory.begin() as session:
        hooks = WebhookRepository(session)
        row, secret = hooks.add(url="https://bot.example/hook", events=["run.published"], key=KEY)
        other, _ = hooks.add(url="https://bot.example/other", events=["run.published"], key=KEY)
    stored = _stored_secret(backend, row.webhook_id)
    assert secret.startswith("whsec_") and secret not in stored and stored.startswith(f"aesgcm:{key_id(KEY)}:")
    with backend.session_factory() as session:
        assert WebhookRepository(session).signing_secret(row.webhook_id, key=KEY) == secret
    with pytest.raises(SecretUnreadableError, match=f"sealed with key {key_id(KEY)}"):
        open_secret(stored, key=OTHER_KEY, context=row.webhook_id)
    with pytest.raises(SecretUnreadableError, match="DANTARO_WEBHOOK_SECRETS_KEY is unset"):
        open_secret(stored, key=None, context=row.webhook_id)
    with pytest.raises(SecretUnreadableError, match="moved from another row"):
        open_secret(stored, key=KEY, context=other.webhook_id)


def test_without_a_key_the_secret_is_stored_as_is(backend: StorageBackend) -> None:
    with backend.session_factory.begin() as session:
        row, secret = WebhookRepository(session).add(url="https://bot.example/h", events=["level.broken"], key=None)
    assert _stored_secret(backend, row.webhook_id) == f"plain:{secret}"
    assert open_secret(seal("s", key=None, context="x"), key=KEY, context="x") == "s"


def test_a_claim_leases_its_deliveries_until_it_ends(backend: StorageBackend) -> None:
    settings = hook_settings()
    hook, _ = add_hook(backend.session_factory, settings, url="http://127.0.0.1:9/h", events=["run.published"])
    now = utc_now()
    with backend.session_factory.begin() as session:
        ids = [
            enqueue(session, webhook_id=hook.webhook_id, event=Event(EventType.TEST, {"n": n}), run_id=None, now=now)
            for n in range(3)
        ]
    lease = now + timedelta(seconds=30)
    with backend.session_factory.begin() as session:
        first = DeliveryRepository(session).claim_due(now=now, lease_until=lease, limit=2)
    with backend.session_factory.begin() as session:
        second = DeliveryRepository(session).claim_due(now=now, lease_until=lease, limit=10)
    with backend.session_factory.begin() as session:
        after_lease = DeliveryRepository(session).claim_due(now=lease, lease_until=lease, limit=10)
    assert len(first) == 2 and len(second) == 1
    assert {d.delivery_id for d in [*first, *second]} == set(ids)
    assert len(after_lease) == 3  # a claim whose worker died is due again when its lease ends
    assert first[0].body.startswith(b'{"event":"webhook.test","delivery_id":"')


def test_removing_a_webhook_removes_its_deliveries_and_attempts(backend: StorageBackend) -> None:
    settings = hook_settings()
    hook, _ = add_hook(backend.session_factory, settings, url="http://127.0.0.1:9/h", events=["run.published"])
    with backend.session_factory.begin() as session:
        delivery_id = enqueue(session, webhook_id=hook.webhook_id, event=Event(EventType.TEST, {}), run_id=None)
        attempt = Attempt(1, utc_now(), 500, 3.5, "HTTP 500")
        assert DeliveryRepository(session).record_attempt(
            delivery_id, attempt, state=DeliveryState.PENDING, next_attempt_at=utc_now()
        )
    with backend.session_factory.begin() as session:
        assert WebhookRepository(session).remove(hook.webhook_id)
        assert not WebhookRepository(session).remove(hook.webhook_id)
    with backend.session_factory() as session:
        for model in (WebhookDeliveryModel, WebhookAttemptModel):
            assert session.execute(select(func.count()).select_from(model)).scalar_one() == 0
        assert not DeliveryRepository(session).record_attempt(
            delivery_id, attempt, state=DeliveryState.FAILED, next_attempt_at=None
        )


def test_runs_of_an_exchange_no_webhook_follows_write_no_delivery(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    factory = backend.session_factory
    add_hook(factory, hook_settings(), url="http://127.0.0.1:9/h", events=["run.published"], exchanges=["upbit"])
    publish(make_snapshot(run_id="binance-run"), session_factory=factory, cache=None)
    assert deliveries(factory) == []
    publish(make_snapshot(run_id="upbit-run", exchange="upbit"), session_factory=factory, cache=None)
    assert [(d.run_id, d.event) for d in deliveries(factory)] == [("upbit-run", "run.published")]


def test_retention_deletes_old_deliveries_with_their_runs_and_by_age(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    settings = hook_settings()
    hook, _ = add_hook(backend.session_factory, settings, url="http://127.0.0.1:9/h", events=["run.published"])
    old = utc_now() - timedelta(days=40)
    with backend.session_factory.begin() as session:
        runs = RunRepository(session)
        for run_id, started in (("old-run", old), ("new-run", utc_now())):
            runs.start(run_id=run_id, exchange="binance", started_at=started)
            runs.save_snapshot(make_snapshot(run_id=run_id), published_at=started)
            enqueue_run_events(session, make_snapshot(run_id=run_id), now=started)
        enqueue(session, webhook_id=hook.webhook_id, event=Event(EventType.TEST, {}), run_id=None, now=old)
        enqueue(session, webhook_id=hook.webhook_id, event=Event(EventType.TEST, {}), run_id=None)
    cutoff = utc_now() - timedelta(days=30)
    result = apply_retention(
        backend.session_factory, RetentionPolicy(runs_before=cutoff, claims_before=cutoff, candle_keep_ms={})
    )
    left = deliveries(backend.session_factory)
    assert result.runs == 1 and result.deliveries == 1  # old-run's went with it; the old test delivery by age
    assert sorted((d.event, d.run_id) for d in left) == [("run.published", "new-run"), ("webhook.test", None)]
    assert webhook_key_bytes(settings) is not None
