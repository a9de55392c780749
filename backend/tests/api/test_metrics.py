"""The API's Prometheus /metrics: request counts by route template, latency, tiers, fallbacks, rate limits,
freshness gauges, and every dantaro_api_* name the alert rules and the Grafana dashboard query."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from app.api.app import ApiState
from app.domain import utc_now
from app.storage.cache import RedisCache
from app.storage.publish import publish
from app.storage.redis_py import RedisPyClient
from tests.support.api import (
    DEV_AUTH,
    Database,
    inside_one_rate_window,
    make_settings,
    migrated_database,
    running_client,
)
from tests.support.paths import MONITORING_DIR
from tests.support.snapshots import build_snapshot

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of the app's /metrics, keyed by (name, labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_by_route_template_method_and_status(published: Database) -> None:
    with running_client(make_settings(published.url)) as client:
        for symbol in ("BTC", "ETH", "ETH/USDT"):
            assert client.get(f"/api/v1/support-levels/{symbol}", headers=DEV_AUTH).status_code == 200
        assert client.get("/api/v1/support-levels/NOPE", headers=DEV_AUTH).status_code == 404
        assert client.get("/api/v1/recommendations").status_code == 401
        assert client.get("/wp-admin/setup.php").status_code == 404
        assert client.post("/health").status_code == 405
        assert client.request("PROPFIND", "/health").status_code == 405
        samples = scrape(client)
    total = "dantaro_api_requests_total"
    levels = "/api/v1/support-levels/{symbol}"
    assert value(samples, total, route=levels, method="GET", status="200") == 3
    assert value(samples, total, route=levels, method="GET", status="404") == 1
    assert value(samples, total, route="/api/v1/recommendations", method="GET", status="401") == 1
    assert value(samples, total, route="unmatched", method="GET", status="404") == 1
    assert value(samples, total, route="/health", method="POST", status="405") == 1
    assert value(samples, total, route="/health", method="other", status="405") == 1  # methods stay bounded
    assert not any("BTC" in dict(labels).get("route", "") for _, labels in samples)  # never a raw path
    count = value(samples, "dantaro_api_request_duration_seconds_count", route=levels)
    assert count == 4 and 0 < value(samples, "dantaro_api_request_duration_seconds_sum", route=levels) < 20
    fastest = value(samples, "dantaro_api_request_duration_seconds_bucket", route=levels, le="0.0005")
    assert fastest <= value(samples, "dantaro_api_request_duration_seconds_bucket", route=levels, le="5.0") == 4


def test_tiers_rate_limits_and_freshness_gauges(published: Database) -> None:
    _, secret = published.create_key(rate_limit_per_min=2)
    auth = {"Authorization": f"Bearer {secret}"}
    with running_client(make_settings(published.url)) as client:
        inside_one_rate_window()
        statuses = [client.get("/api/v1/market-status", headers=auth).status_code for _ in range(4)]
        client.get("/api/v1/recommendations?use_cache=false", headers=DEV_AUTH)
        samples = scrape(client)
    assert statuses == [200, 200, 429, 429]
    assert value(samples, "dantaro_api_rate_limited_total") == 2
    assert value(samples, "dantaro_api_snapshot_reads_total", tier="database") == 2  # first read, use_cache=false
    assert value(samples, "dantaro_api_snapshot_reads_total", tier="memory") == 1
    assert value(samples, "dantaro_api_cache_fallbacks_total", reason="cache_miss") == 0  # no shared cache
    assert 0 < value(samples, "dantaro_api_data_age_seconds", exchange="binance") < 60
    assert value(samples, "dantaro_api_data_stale", exchange="binance") == 0
    assert ("dantaro_api_redis_up", frozenset()) not in samples  # no Redis configured: no gauge
    assert ("dantaro_api_data_age_seconds", frozenset({("exchange", "upbit")})) not in samples  # never published


def test_stale_data_is_flagged_at_scrape_time_without_any_request(tmp_path: Path) -> None:
    with migrated_database(tmp_path) as db:
        settings = make_settings(db.url)
        db.publish(build_snapshot(generated_at=utc_now() - timedelta(seconds=settings.stale_after_s + 5)))
        with running_client(settings) as client:
            samples = scrape(client)
    assert value(samples, "dantaro_api_data_stale", exchange="binance") == 1
    assert value(samples, "dantaro_api_data_age_seconds", exchange="binance") > settings.stale_after_s


def _referenced_api_metrics() -> set[str]:
    text = (MONITORING_DIR / "alerts.yml").read_text() + (
        MONITORING_DIR / "grafana" / "dantaro-central.json"
    ).read_text()
    return set(re.findall(r"dantaro_api_[a-z_]+", text))


@pytest.mark.redis
def test_every_api_metric_the_alerts_and_dashboard_use_is_exported(
    published: Database, redis_url: str, redis_prefix: str
) -> None:
    referenced = _referenced_api_metrics()
    assert {"dantaro_api_requests_total", "dantaro_api_redis_up", "dantaro_api_data_stale"} <= referenced
    client_redis = RedisPyClient.from_url(redis_url, timeout_s=2.0)
    snapshot = build_snapshot(bases=("BTC", "ETH"))
    publish(
        snapshot,
        session_factory=published.session_factory,
        cache=RedisCache(client_redis, prefix=redis_prefix, ttl_s=60),
    )
    client_redis.close()
    settings = make_settings(published.url, redis_url=redis_url, redis_prefix=redis_prefix)
    with running_client(settings) as client:
        for _ in range(3):
            assert client.get("/api/v1/recommendations", headers=DEV_AUTH).status_code == 200
        samples = scrape(client)
    exported = {name for name, _ in samples}
    assert referenced <= exported, referenced - exported
    assert value(samples, "dantaro_api_redis_up") == 1
    assert value(samples, "dantaro_api_snapshot_reads_total", tier="redis") == 1


def test_an_in_process_workers_registry_is_exposed_too(published: Database) -> None:
    """`dantaro run` passes the worker's registry: one scrape shows both processes' metrics, no duplicates."""
    worker_registry = CollectorRegistry()
    Counter("dantaro_worker_runs", "runs", ["exchange", "status"], registry=worker_registry).labels(
        exchange="binance", status="succeeded"
    ).inc()
    with running_client(make_settings(published.url), state=ApiState(extra_metrics=worker_registry)) as client:
        client.get("/health")
        text = client.get("/metrics").text
    names = [family.name for family in text_string_to_metric_families(text)]
    assert "dantaro_worker_runs" in names and "dantaro_api_requests" in names
    assert len(names) == len(set(names))
