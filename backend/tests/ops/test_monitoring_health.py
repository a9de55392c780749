"""monitoring/health.py against a live API server (uvicorn on a free port): OK when ready, WARNING when Redis is
down, CRITICAL when the worker's heartbeat stops or the data goes stale, and when nothing listens."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn

from app.api.app import create_app
from app.config import Settings
from app.domain import utc_now
from tests.support.api import make_settings, migrated_database, write_heartbeat
from tests.support.network import free_port, serving_in_thread
from tests.support.paths import MONITORING_DIR
from tests.support.snapshots import build_snapshot

PROBE = MONITORING_DIR / "health.py"
MEMORY_CHECK_INTERVAL_S = 1.0  # SnapshotReader's default
INERT_RESOURCES = ["--warn-pct", "100.1", "--crit-pct", "100.2"]  # CPU/memory/disk never decide the verdict here


@contextmanager
def live_api(settings: Settings) -> Iterator[str]:
    """The API served by uvicorn in a thread; yields its base URL."""
    config = uvicorn.Config(create_app(settings), log_config=None, access_log=False)
    with serving_in_thread(config) as port:
        yield f"http://127.0.0.1:{port}"


def run_probe(base_url: str, *extra: str) -> tuple[int, dict[str, Any]]:
    """Exit code and JSON report of the probe, run as the operators run it."""
    args = [sys.executable, str(PROBE), "--base-url", base_url, "--json", *INERT_RESOURCES, *extra]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    return result.returncode, json.loads(result.stdout)


def test_probe_follows_readiness_of_a_live_server(tmp_path: Path) -> None:
    with migrated_database(tmp_path) as db:
        settings = make_settings(db.url, exchanges=["binance"], heartbeat_interval_s=5)
        db.publish(build_snapshot(bases=("BTC", "ETH")))
        write_heartbeat(db)
        with live_api(settings) as base_url:
            ready = run_probe(base_url)
            write_heartbeat(db, beat_at=utc_now() - timedelta(minutes=2))  # the worker stopped beating
            no_worker = run_probe(base_url)
            write_heartbeat(db)
            db.publish(build_snapshot(bases=("BTC",), generated_at=utc_now() - timedelta(hours=3)))
            time.sleep(MEMORY_CHECK_INTERVAL_S + 0.1)  # the API's in-process copy is re-validated this often
            stale = run_probe(base_url)
    assert ready[0] == 0, ready
    assert ready[1]["status"] == "OK" and "binance_age_s" in ready[1]["figures"]
    assert no_worker[0] == 2 and no_worker[1]["status"] == "CRITICAL"
    assert any("not ready" in reason and "worker" in reason for reason in no_worker[1]["reasons"]), no_worker
    assert stale[0] == 2 and any("binance: data is stale" in reason for reason in stale[1]["reasons"]), stale


def test_probe_warns_when_redis_is_down_and_is_critical_when_nothing_listens(tmp_path: Path) -> None:
    with migrated_database(tmp_path) as db:
        settings = make_settings(db.url, exchanges=["binance"], redis_url=f"redis://127.0.0.1:{free_port()}/0")
        db.publish(build_snapshot(bases=("BTC",)))
        write_heartbeat(db)
        with live_api(settings) as base_url:
            degraded = run_probe(base_url)
    assert degraded[0] == 1 and degraded[1]["reasons"] == ["Redis unavailable (serving from memory/database)"]
    gone = run_probe(base_url, "--timeout-s", "1")
    assert gone[0] == 2 and "cannot reach" in gone[1]["reasons"][0]
