"""``GET /api/v1/pairlist`` through a running app: the recommendations' selection as ccxt pairs, refresh_period,
freshness, HTTP caching, and every error as ``application/problem+json`` (why: ``app/api/routes/pairlist.py``).

On SQLite + the in-process cache and on PostgreSQL + Redis; freqtrade's own client against a running process is
``tests/integrations/test_freqtrade_pairlist.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.app import ApiState
from app.api.integration_schemas import PairlistResponse
from app.api.schemas import ErrorResponse
from app.domain import Snapshot, utc_now
from app.storage.cache import MemoryCache, RedisCache, SnapshotCache
from app.storage.publish import publish
from tests.support.api import DEV_AUTH, make_settings, running_client
from tests.support.snapshots import build_snapshot
from tests.support.storage import StorageBackend
from tests.support.waiting import wait_for

PAIRLIST = "/api/v1/pairlist"
RECOMMENDATIONS = "/api/v1/recommendations"
PROBLEM = "application/problem+json"


@dataclass
class Stack:
    """A running app and the worker's publish into its database and cache."""

    client: TestClient
    backend: StorageBackend
    cache: SnapshotCache

    def publish(self, run: Snapshot) -> None:
        """Publish ``run`` as the worker does and wait until the app serves or refuses it."""
        publish(run, session_factory=self.backend.session_factory, cache=self.cache)

        def seen() -> bool:
            body = self.client.get(PAIRLIST, headers=DEV_AUTH).json()
            return body.get("run_id") == run.run_id or run.run_id in body.get("error", {}).get("message", "")

        wait_for(seen, timeout_s=3, what=f"the app to serve {run.run_id}", poll_s=0.02)

    def get(self, path: str = PAIRLIST, **params: Any) -> Any:
        """``GET path`` with the development key."""
        return self.client.get(path, params=params, headers=DEV_AUTH)


@pytest.fixture
def stack(backend: StorageBackend, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """SQLite + the in-process cache (shared as ``dantaro run`` shares it), PostgreSQL + Redis."""
    settings: dict[str, Any] = {"exchanges": ["binance", "upbit"]}
    cache: SnapshotCache
    if backend.name == "sqlite":
        cache = MemoryCache()
        state = ApiState(cache=cache)
    else:
        prefix = request.getfixturevalue("redis_prefix")
        cache = RedisCache(request.getfixturevalue("worker_redis"), prefix=prefix, ttl_s=300)
        settings.update(redis_url=request.getfixturevalue("redis_url"), redis_prefix=prefix)
        state = None
    publish(build_snapshot(run_id="run-1"), session_factory=backend.session_factory, cache=cache)
    with running_client(make_settings(backend.url, **settings), state=state) as client:
        yield Stack(client, backend, cache)


def _problem(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == code, error
    return error.message


def test_the_pairs_are_the_recommendations_in_ccxt_form_best_first(stack: Stack) -> None:
    response = stack.get(top_n=5, horizon="4h")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = PairlistResponse.model_validate(response.json())
    ranked = stack.get(RECOMMENDATIONS, top_n=5, horizon="4h").json()
    assert body.pairs == [item["symbol"] for item in ranked["recommendations"]]
    assert len(body.pairs) == 5 and all(pair.endswith("/USDT") and pair.count("/") == 1 for pair in body.pairs)
    assert body.run_id == ranked["run_id"] == "run-1" and body.horizon == "4h" and body.quote is None
    assert body.exchange == "binance" and not body.stale and body.total_analyzed == ranked["total_analyzed"]
    assert body.data_source in {"memory", "cache", "redis", "database"}


@pytest.mark.parametrize(
    "filters",
    [{"label": "BUY"}, {"min_score": 0.5}, {"quote": "usdt", "top_n": 3}, {"label": "HOLD", "min_score": 0.4}],
)
def test_filters_match_the_recommendations_filters(stack: Stack, filters: dict[str, Any]) -> None:
    recommendation_filters = {k: v for k, v in filters.items() if k != "quote"}
    ranked = stack.get(RECOMMENDATIONS, **recommendation_filters).json()["recommendations"]
    body = stack.get(**filters).json()
    assert body["pairs"] == [item["symbol"] for item in ranked]
    assert body["quote"] == ("USDT" if "quote" in filters else None)


def test_refresh_period_is_the_time_to_the_next_run_never_below_60(stack: Stack) -> None:
    quick = stack.get()  # replay: the next run is due 60 s after the last one
    assert quick.json()["refresh_period"] == 60
    hourly = make_settings(stack.backend.url, market_source="ccxt", exchanges=["binance"], timeframes=["1h", "1d"])
    stack.publish(build_snapshot(run_id="run-2", generated_at=utc_now() - timedelta(minutes=10)))
    with running_client(hourly, state=ApiState(cache=MemoryCache())) as client:
        body = client.get(PAIRLIST, headers=DEV_AUTH).json()
        max_age_s = int(client.get(PAIRLIST, headers=DEV_AUTH).headers["cache-control"].rsplit("=", 1)[1])
    assert 60 * 49 <= body["refresh_period"] <= 60 * 50 and abs(body["refresh_period"] - max_age_s) <= 1


def test_etag_answers_304_until_a_new_run(stack: Stack) -> None:
    etag = stack.get(top_n=3).headers["etag"]
    again = stack.client.get(PAIRLIST, params={"top_n": 3}, headers={**DEV_AUTH, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    stack.publish(build_snapshot(run_id="run-2"))
    newer = stack.client.get(PAIRLIST, params={"top_n": 3}, headers={**DEV_AUTH, "If-None-Match": etag})
    assert newer.status_code == 200 and newer.json()["run_id"] == "run-2"


def test_stale_data_is_refused_with_503_data_stale(stack: Stack) -> None:
    stack.publish(build_snapshot(run_id="run-old", generated_at=utc_now() - timedelta(minutes=5)))
    response = stack.get()
    message = _problem(response, 503, "data_stale")
    assert "run-old" in message and "120 s" in message and response.headers["retry-after"] == "60"
    assert stack.get(RECOMMENDATIONS).json()["stale"] is True  # the other endpoints still serve it, flagged


def test_every_error_is_problem_json_with_the_usual_body(stack: Stack) -> None:
    _problem(stack.client.get(PAIRLIST), 401, "unauthorized")
    _problem(stack.client.get(PAIRLIST, headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
    _problem(stack.get(top_n=0), 422, "invalid_request")
    _problem(stack.get(quote="US-DT"), 422, "invalid_request")
    assert "USDT" in _problem(stack.get(quote="KRW"), 422, "unknown_quote")
    assert "1h" in _problem(stack.get(horizon="2h"), 422, "unknown_horizon")
    _problem(stack.get(exchange="kraken"), 404, "unknown_exchange")
    _problem(stack.get(exchange="upbit"), 503, "data_not_ready")
    assert stack.get(RECOMMENDATIONS, top_n=0).headers["content-type"] == "application/json"  # others unchanged
