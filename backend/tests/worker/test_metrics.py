"""Worker metrics and the run summary log: every ``dantaro_worker_*`` name the monitoring files query is exposed
after one real cycle, with values from that cycle; the endpoint serves them; ``run_finished`` carries the summary.
"""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest
from structlog.testing import CapturingLogger

from app.config import Settings
from app.exchange import build_source
from app.worker.cycle import ExchangeCycle, log_run_finished
from app.worker.metrics import start_metrics_server
from app.worker.service import Worker
from tests.support.candles import copy_replay_pairs
from tests.support.network import free_port
from tests.support.paths import MONITORING_DIR
from tests.support.storage import StorageBackend

MONITORING_FILES = (MONITORING_DIR / "alerts.yml", MONITORING_DIR / "grafana" / "dantaro-central.json")
BASES = ("BTC", "ETH", "SOL")


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_replay_pairs(tmp_path_factory.mktemp("replay"), BASES)


def _sample(exposition: str, name: str, **labels: str) -> float:
    rendered = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(rendered)}\}} (\S+)$", exposition, re.MULTILINE)
    assert match, f"{name}{{{rendered}}} not exposed"
    return float(match.group(1))


async def test_one_cycle_exposes_every_monitored_worker_metric(backend: StorageBackend, replay_dir: Path) -> None:
    settings = Settings(
        _env_file=None,
        database_url=backend.url,
        replay_data_dir=replay_dir,
        replay_warmup_candles=100,
        lookback_candles=150,
    )
    source = build_source(settings, "binance", resume_from_ms=None)
    cycle = ExchangeCycle(source=source, settings=settings, session_factory=backend.session_factory, cache=None)
    worker = Worker(settings=settings, engine=backend.engine, session_factory=backend.session_factory, cycles=[cycle])
    before = generate_latest(REGISTRY).decode()
    runs_before = (
        _sample(before, "dantaro_worker_runs_total", exchange="binance", status="succeeded")
        if ('dantaro_worker_runs_total{exchange="binance",status="succeeded"}' in before)
        else 0.0
    )
    try:
        outcome = await worker.run_cycle("binance")
    finally:
        await source.close()
    assert outcome is not None and outcome.symbols_ok == len(BASES)
    exposition = generate_latest(REGISTRY).decode()
    referenced = {name for path in MONITORING_FILES for name in re.findall(r"dantaro_worker_\w+", path.read_text())}
    assert referenced >= {"dantaro_worker_runs_total", "dantaro_worker_last_success_timestamp_seconds"}
    for name in referenced:
        assert re.search(rf"^{name}\{{", exposition, re.MULTILINE), f"{name} is queried by monitoring, not exposed"
    assert _sample(exposition, "dantaro_worker_runs_total", exchange="binance", status="succeeded") == runs_before + 1
    assert _sample(exposition, "dantaro_worker_symbols_analysed", exchange="binance") == len(BASES)
    assert (
        abs(_sample(exposition, "dantaro_worker_last_success_timestamp_seconds", exchange="binance") - time.time()) < 60
    )
    assert _sample(exposition, "dantaro_worker_run_duration_seconds_count", exchange="binance") >= 1

    capturing = CapturingLogger()
    log_run_finished(outcome, now_ms=1_650_000_000_000, logger=capturing)
    (call,) = capturing.calls
    summary = {"event": call.args[0], **call.kwargs}
    assert summary["event"] == "run_finished"
    assert summary["run_id"] == outcome.run_id and summary["exchange"] == "binance"
    assert summary["status"] == "succeeded" and summary["symbols"] == summary["symbols_ok"] == len(BASES)
    assert summary["symbols_failed"] == 0 and summary["errors"] == {} and summary["exchange_errors"] == 0
    assert summary["duration_s"] == round(outcome.duration_s, 3) and 0 < summary["duration_s"] < 60


def test_metrics_endpoint_serves_the_default_registry_and_tolerates_a_taken_port() -> None:
    assert start_metrics_server(Settings(_env_file=None, worker_metrics_port=0)) is False
    settings = Settings(_env_file=None, worker_metrics_port=free_port())
    assert start_metrics_server(settings) is True
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.worker_metrics_port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert "# TYPE dantaro_worker_runs_total counter" in body
    assert "# TYPE dantaro_worker_run_duration_seconds histogram" in body
    assert start_metrics_server(settings) is False  # a second worker on the host: logged, no crash
