"""The worker's ``webhooks`` job: scheduled every ``DANTARO_WEBHOOK_POLL_INTERVAL_S``, delivers and counts its
attempts in ``dantaro_webhook_attempts_total``, and a database that is away skips a pass without failing the job."""

from __future__ import annotations

from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from app.storage.db import make_engine, make_session_factory
from app.storage.publish import publish
from app.worker.service import Worker
from tests.support.paths import MONITORING_DIR
from tests.support.snapshots import MakeSnapshot
from tests.support.storage import StorageBackend
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import add_hook, hook_settings


def _attempts_counted(state: str) -> float:
    value = REGISTRY.get_sample_value("dantaro_webhook_attempts_total", {"event": "run.published", "state": state})
    return value or 0.0


async def test_the_job_is_scheduled_delivers_and_is_counted(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    settings = hook_settings(webhook_poll_interval_s=0.5)
    worker = Worker(settings=settings, engine=backend.engine, session_factory=backend.session_factory, cycles=[])
    scheduler = AsyncIOScheduler(timezone="UTC")
    worker.install_jobs(scheduler)
    job = scheduler.get_job("webhooks")
    assert job is not None and job.trigger.interval.total_seconds() == 0.5
    before = _attempts_counted("delivered")
    with WebhookReceiver() as receiver:
        _, secret = add_hook(backend.session_factory, settings, url=receiver.url, events=["run.published"])
        publish(make_snapshot(run_id="run-w"), session_factory=backend.session_factory, cache=None)
        result = await worker.run_webhooks()
        (request,) = receiver.verified(secret)
    assert [outcome.delivery_id for outcome in result.outcomes] == [request.delivery_id]
    assert _attempts_counted("delivered") == before + 1
    alerts = (MONITORING_DIR / "alerts.yml").read_text()
    assert 'dantaro_webhook_attempts_total{state="failed"}' in alerts and "#dantarowebhookdeliveriesfailing" in alerts


async def test_a_pass_without_the_database_is_skipped_and_logged(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'not-migrated.sqlite3'}")
    try:
        worker = Worker(
            settings=hook_settings(), engine=engine, session_factory=make_session_factory(engine), cycles=[]
        )
        with capture_logs() as logs:
            result = await worker.run_webhooks()
    finally:
        engine.dispose()
    assert result.outcomes == ()
    (failed,) = [entry for entry in logs if entry["event"] == "webhooks_pass_failed"]
    assert "no such table: webhook_deliveries" in failed["error"]
