"""The track record's tiers and HTTP caching: memory -> Redis -> database, the version check at most once a
second, ETag / 304 until new scores arrive, a failing Redis. SQLite + memory and PostgreSQL + Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import redis
from fastapi.testclient import TestClient

from app.api.track_store import DATABASE, MEMORY, REDIS, SharedTier, TrackRecordStore, body_key
from app.domain import Snapshot
from app.storage.publish import publish
from app.storage.redis_client import RedisClient
from app.storage.sql import Database, SqlConnection
from tests.support.api import DEV_AUTH, Breaker, make_settings, running_client
from tests.support.clocks import ManualClock
from tests.support.network import free_port
from tests.support.storage import StorageBackend
from tests.support.track_rows import HOUR, publish_runs, save_history, save_scores, scored_history
from tests.support.waiting import wait_for

SUMMARY = "/api/v1/track-record"


def _get(client: TestClient, path: str = SUMMARY, **params: Any) -> Any:
    response = client.get(path, params=params, headers=DEV_AUTH)
    assert response.status_code == 200, response.text
    return response


@pytest.fixture
def client(track_db: StorageBackend) -> Iterator[TestClient]:
    with running_client(make_settings(track_db.url)) as test_client:
        yield test_client


def test_the_database_answers_once_then_this_process_keeps_the_body(client: TestClient) -> None:
    assert _get(client, horizon="4h").json()["data_source"] == DATABASE
    assert _get(client, horizon="4h").json()["data_source"] == MEMORY
    assert _get(client, horizon="4h", use_cache="false").json()["data_source"] == DATABASE
    assert _get(client, horizon="1h").json()["data_source"] == DATABASE  # other parameters: another body


def test_etag_answers_304_until_new_scores_are_saved(backend: StorageBackend, track_run: Snapshot) -> None:
    history = scored_history(track_run, runs=12)
    pending = scored_history(track_run, runs=1, seed=3, last_as_of=track_run.data_as_of - 20 * HOUR)
    publish_runs(backend.session_factory, track_run, pending)  # published, not yet scored
    save_history(backend.session_factory, track_run, history)
    publish(track_run, session_factory=backend.session_factory, cache=None)
    with running_client(make_settings(backend.url)) as client:
        first = _get(client, horizon="4h")
        etag = first.headers["etag"]
        assert etag.startswith('W/"track-') and first.headers["cache-control"].startswith("private, max-age=")
        again = client.get(SUMMARY, params={"horizon": "4h"}, headers={**DEV_AUTH, "If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        other = client.get(SUMMARY, params={"horizon": "4h", "days": 2}, headers={**DEV_AUTH, "If-None-Match": etag})
        assert other.status_code == 200 and other.headers["etag"] != etag
        save_scores(backend.session_factory, pending)

        def changed() -> bool:
            response = client.get(SUMMARY, params={"horizon": "4h"}, headers={**DEV_AUTH, "If-None-Match": etag})
            return response.status_code == 200

        assert wait_for(changed, timeout_s=3, what="the new scores", poll_s=0.05) < 2.0  # the 1-s version check
        body = _get(client, horizon="4h").json()
    assert first.json()["runs_scored"] == 12 and body["runs_scored"] == 13


def test_the_version_is_read_at_most_once_per_interval(track_db: StorageBackend) -> None:
    clock, statements = ManualClock(), []

    class Counting:  # each version read is one call of one statement
        def read(self, call: Callable[[SqlConnection], Any]) -> Any:
            statements.append(call)
            return track_db.database.read(call)

    store = TrackRecordStore(database=cast(Database, Counting()), clock_s=clock)
    version = store.version("binance")
    assert store.version("binance") == version and store.cached_version("binance") == version
    clock.now_s += 0.9
    assert store.version("binance") == version and len(statements) == 1
    clock.now_s += 0.2
    assert store.cached_version("binance") is None
    assert store.version("binance") == version and len(statements) == 2
    assert store.version("upbit") == "none"  # nothing scored there


def test_an_overdue_version_is_served_while_one_background_read_renews_it(track_db: StorageBackend) -> None:
    clock, started = ManualClock(), []
    store = TrackRecordStore(database=track_db.database, clock_s=clock, spawn=started.append)
    assert store.known_version("binance") is None  # nothing read yet: the route reads it (blocking)
    version = store.version("binance")
    clock.now_s += 1.5
    assert store.known_version("binance") == version and store.known_version("binance") == version
    assert len(started) == 1 and store.cached_version("binance") is None  # one re-read, not yet run
    started[0]()
    assert store.cached_version("binance") == version and store.known_version("binance") == version
    assert len(started) == 1


def test_a_redis_that_refuses_trips_the_breaker_and_the_database_answers(track_db: StorageBackend) -> None:
    dead = RedisClient.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    breaker = Breaker()
    shared = SharedTier(dead, prefix="dantaro-test", ttl_s=60, breaker=breaker)
    store = TrackRecordStore(database=track_db.database, shared=shared)
    loads: list[int] = []

    def load(repository: object) -> dict[str, object]:
        loads.append(1)
        return {"runs": len(loads)}

    key = body_key("binance", store.version("binance"), "test")
    assert store.get("binance", key, load) == ({"runs": 1}, DATABASE)
    assert len(breaker.trips) == 1 and "track record: redis RedisConnectionError: cannot connect" in breaker.trips[0]
    assert store.get("binance", key, load) == ({"runs": 1}, MEMORY)


@pytest.mark.redis
def test_a_second_api_process_reads_the_body_from_redis(
    track_db: StorageBackend, redis_client: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    settings = make_settings(track_db.url, exchanges=["binance"], redis_url=redis_url, redis_prefix=redis_prefix)
    with running_client(settings) as first, running_client(settings) as second:
        one = _get(first, horizon="1h", days=1)
        two = _get(second, horizon="1h", days=1)
        three = _get(second, horizon="1h", days=1)
    assert [r.json()["data_source"] for r in (one, two, three)] == [DATABASE, REDIS, MEMORY]
    assert one.json() | {"data_source": ""} == two.json() | {"data_source": ""}
    assert one.headers["etag"] == two.headers["etag"]
    keys = list(redis_client.scan_iter(f"{redis_prefix}:track-record:binance:*"))
    assert len(keys) == 1 and 0 < int(redis_client.ttl(keys[0])) <= settings.snapshot_ttl_s
