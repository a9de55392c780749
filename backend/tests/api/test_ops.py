"""Operations endpoints of the API: /health/ready (checks, reasons, 503), X-Request-ID and the request log event."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy import text
from structlog.testing import capture_logs

from app.domain import utc_now
from tests.support.api import (
    DEV_AUTH,
    EXCHANGES,
    Database,
    make_settings,
    migrated_database,
    running_client,
    write_heartbeat,
)
from tests.support.network import free_port
from tests.support.snapshots import build_snapshot


@pytest.fixture
def database(database: Database) -> Database:
    """The API's database with a run published for every configured exchange."""
    for exchange in EXCHANGES:
        database.publish(build_snapshot(exchange=exchange, bases=("BTC", "ETH")))
    return database


def test_ready_when_database_worker_and_every_exchange_are_fine(database: Database) -> None:
    write_heartbeat(database)
    with running_client(make_settings(database.url)) as client:
        response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready" and "reasons" not in body
    checks = body["checks"]
    assert checks["database"]["ok"] is True and checks["database"]["latency_ms"] >= 0
    assert checks["redis"] == {"configured": False, "ok": None, "latency_ms": None}
    assert checks["worker"]["ok"] is True and checks["worker"]["worker_id"] == "worker-a"
    assert 0 <= checks["worker"]["heartbeat_age_s"] < 10
    assert set(checks["exchanges"]) == set(EXCHANGES)
    for info in checks["exchanges"].values():
        assert info["ok"] is True and info["stale"] is False and len(info["run_id"]) == 32
        assert 0 <= info["age_seconds"] < 60


def test_not_ready_names_an_old_heartbeat_a_stale_and_a_missing_exchange(tmp_path: Path) -> None:
    with migrated_database(tmp_path) as db:
        settings = make_settings(db.url, heartbeat_interval_s=10)
        db.publish(build_snapshot(generated_at=utc_now() - timedelta(seconds=settings.stale_after_s + 60)))
        write_heartbeat(db, beat_at=utc_now() - timedelta(seconds=31))
        with running_client(settings) as client:
            response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    reasons = " | ".join(body["reasons"])
    assert "worker: newest heartbeat (worker-a)" in reasons and "limit 30 s" in reasons
    assert "binance: data is stale" in reasons and "upbit: no analysis published yet" in reasons
    exchanges = body["checks"]["exchanges"]
    assert exchanges["binance"]["stale"] is True and exchanges["binance"]["ok"] is False
    assert exchanges["upbit"] == {"ok": False, "run_id": None, "age_seconds": None, "stale": None}
    assert body["checks"]["database"]["ok"] is True and body["checks"]["worker"]["ok"] is False


def test_not_ready_without_any_heartbeat_or_with_a_broken_database(database: Database) -> None:
    with running_client(make_settings(database.url)) as client:
        assert client.get("/health/ready").json()["reasons"] == ["worker: no worker heartbeat recorded"]
        write_heartbeat(database)
        assert client.get("/health/ready").status_code == 200
        with database.session_factory() as session:
            session.execute(text("DROP TABLE worker_heartbeats"))
            session.commit()
        response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["database unreachable: DatabaseError"]  # type only, no SQL
    assert response.json()["checks"]["database"] == {"ok": False, "latency_ms": None}


def test_unreachable_redis_is_degraded_not_unready(database: Database) -> None:
    write_heartbeat(database)
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with running_client(make_settings(database.url, redis_url=dead_redis)) as client:
        assert client.get("/api/v1/recommendations", headers=DEV_AUTH).status_code == 200  # served from the database
        response = client.get("/health/ready")
        metrics = client.get("/metrics").text
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["redis"] == {"configured": True, "ok": False, "latency_ms": None}
    assert "dantaro_api_redis_up 0.0" in metrics
    assert 'dantaro_api_cache_fallbacks_total{reason="redis_error"} 1.0' in metrics


def test_request_id_is_kept_when_sane_and_replaced_when_not(database: Database) -> None:
    with running_client(make_settings(database.url)) as client:
        kept = client.get("/health", headers={"X-Request-ID": "lb-7f3a.2:b_9"})
        long = client.get("/health", headers={"X-Request-ID": "a" * 65})
        injected = client.get("/health", headers={"X-Request-ID": "bad id;<script>"})
        first, second = client.get("/nope"), client.get("/nope")
    assert kept.headers["X-Request-ID"] == "lb-7f3a.2:b_9"
    for response in (long, injected, first, second):
        assert len(response.headers["X-Request-ID"]) == 32
    assert long.headers["X-Request-ID"] != "a" * 65
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    assert first.status_code == 404


def test_each_request_logs_one_event_with_its_id_and_key_id_never_the_key(database: Database) -> None:
    key_id, secret = database.create_key()
    auth = {"Authorization": f"Bearer {secret}"}
    with running_client(make_settings(database.url)) as client, capture_logs() as logs:
        ok = client.get("/api/v1/support-levels/BTC", headers={**auth, "X-Request-ID": "req-1"})
        denied = client.get("/api/v1/recommendations", headers={"Authorization": "Bearer wrong-key"})
    assert ok.status_code == 200 and denied.status_code == 401
    events = [event for event in logs if event["event"] == "request"]
    assert len(events) == 2
    first, second = events
    assert first["request_id"] == "req-1" and first["key_id"] == key_id
    assert first["route"] == "/api/v1/support-levels/{symbol}" and first["method"] == "GET"
    assert first["status"] == 200 and 0 < first["latency_ms"] < 5000
    assert first["log_level"] == "info"
    assert second["key_id"] is None and second["status"] == 401
    assert second["request_id"] == denied.headers["X-Request-ID"]
    assert secret not in repr(logs) and "wrong-key" not in repr(logs)


def test_other_log_lines_of_a_request_carry_its_request_id(database: Database) -> None:
    with running_client(make_settings(database.url)) as client:
        with database.session_factory() as session:
            session.execute(text("DROP TABLE analysis_runs"))
            session.commit()
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            failed = client.get("/api/v1/recommendations?use_cache=false", headers={**DEV_AUTH, "X-Request-ID": "r-9"})
    assert failed.status_code == 500 and failed.headers["X-Request-ID"] == "r-9"
    by_event = {event["event"]: event for event in logs}
    assert by_event["unhandled_error"]["request_id"] == "r-9"
    assert by_event["request"]["status"] == 500 and by_event["request"]["key_id"] == "development"
    assert structlog.contextvars.get_contextvars().get("request_id") is None  # unbound after the request
