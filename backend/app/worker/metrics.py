"""The worker's Prometheus metrics, registered in prometheus_client's default registry.

Invariants:
- Names and labels are the ones ``monitoring/alerts.yml`` and ``monitoring/grafana/dantaro-central.json`` query:
  ``dantaro_worker_runs_total{exchange,status}``, ``dantaro_worker_run_duration_seconds{exchange}`` (histogram),
  ``dantaro_worker_symbols_analysed{exchange}``, ``dantaro_worker_exchange_errors_total{exchange}``,
  ``dantaro_worker_last_success_timestamp_seconds{exchange}`` (Unix seconds of the last published run);
  the track record's ``dantaro_track_record_latest_ic{exchange,horizon}`` (the realised Spearman IC of the newest
  scored run, exported once a run is scored) and ``dantaro_track_record_runs_scored_total{exchange}``; webhook
  attempts ``dantaro_webhook_attempts_total{event,state}`` (``state``: delivered, pending = retried later, failed).
- The metric objects are module-level (prometheus_client's convention; registering them opens nothing); the
  HTTP endpoint is started only by ``start_metrics_server`` in ``dantaro worker``. ``dantaro run`` starts none:
  the API's ``/metrics`` serves the same default registry.
- A port already in use (a second worker on the host) is logged and the worker runs on without an endpoint.
"""

from __future__ import annotations

import time

import structlog
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from app.config import Settings
from app.domain import RunStatus
from app.webhooks.dispatcher import DispatchPass
from app.worker.cycle import CycleOutcome
from app.worker.track_record import ScoringPass

log = structlog.get_logger(__name__)

RUN_DURATION_BUCKETS_S = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
PUBLISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.PARTIAL})

RUNS = Counter("dantaro_worker_runs", "Analysis runs by outcome", ["exchange", "status"])
RUN_DURATION = Histogram(
    "dantaro_worker_run_duration_seconds",
    "Wall time of one collect-analyse-publish run",
    ["exchange"],
    buckets=RUN_DURATION_BUCKETS_S,
)
SYMBOLS_ANALYSED = Gauge("dantaro_worker_symbols_analysed", "Symbols ranked by the last run", ["exchange"])
EXCHANGE_ERRORS = Counter("dantaro_worker_exchange_errors", "Exchange errors met by runs", ["exchange"])
LAST_SUCCESS = Gauge(
    "dantaro_worker_last_success_timestamp_seconds", "Unix time of the last published run", ["exchange"]
)

TRACK_RECORD_IC = Gauge(
    "dantaro_track_record_latest_ic",
    "Realised Spearman IC of the served score of the newest scored run",
    ["exchange", "horizon"],
)
RUNS_SCORED = Counter("dantaro_track_record_runs_scored", "Runs scored by the track-record job", ["exchange"])
WEBHOOK_ATTEMPTS = Counter(
    "dantaro_webhook_attempts",
    "Webhook delivery attempts by the state they left the delivery in (delivered, pending = will retry, failed)",
    ["event", "state"],
)


def record_outcome(outcome: CycleOutcome, *, now_s: float | None = None) -> None:
    """Count one finished run in every worker metric."""
    exchange = outcome.exchange
    RUNS.labels(exchange=exchange, status=str(outcome.status)).inc()
    RUN_DURATION.labels(exchange=exchange).observe(outcome.duration_s)
    EXCHANGE_ERRORS.labels(exchange=exchange).inc(outcome.exchange_errors)
    if outcome.status in PUBLISHED:
        SYMBOLS_ANALYSED.labels(exchange=exchange).set(outcome.symbols_ok)
        LAST_SUCCESS.labels(exchange=exchange).set(time.time() if now_s is None else now_s)


def record_scoring(exchange: str, result: ScoringPass) -> None:
    """Count the runs one scoring pass scored and show the newest realised IC of each horizon."""
    RUNS_SCORED.labels(exchange=exchange).inc(result.runs)
    for horizon, score in result.latest.items():
        if score.ic is not None:
            TRACK_RECORD_IC.labels(exchange=exchange, horizon=horizon).set(score.ic)


def start_metrics_server(settings: Settings) -> bool:
    """Serve ``/metrics`` on ``worker_metrics_host:worker_metrics_port`` (0 = off); False when not serving."""
    port = settings.worker_metrics_port
    if port == 0:
        return False
    try:
        start_http_server(port, addr=settings.worker_metrics_host)
    except OSError as exc:
        log.warning("worker_metrics_unavailable", host=settings.worker_metrics_host, port=port, error=str(exc))
        return False
    log.info("worker_metrics_serving", host=settings.worker_metrics_host, port=port)
    return True


def record_webhooks(result: DispatchPass) -> None:
    """Count one delivery pass's attempts by event and the state they left their delivery in."""
    for outcome in result.outcomes:
        WEBHOOK_ATTEMPTS.labels(event=outcome.event, state=str(outcome.state)).inc()
