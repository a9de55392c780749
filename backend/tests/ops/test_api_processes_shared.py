"""What the processes of ``dantaro api --workers 2`` share, on PostgreSQL and a real Redis: each keeps its own
in-process copy of the current run and learns of a new run from the publish notification, the rate limit of a key
is one budget across them, and a revoked key stops working on both; when the supervisor is killed (SIGKILL), its
processes stop too. Each check talks to each process over a connection it accepted
(``tests.support.supervised.connect_to``)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import redis

from app.storage import migrate
from app.storage.api_keys import ApiKeyRepository
from app.storage.cache import RedisCache
from app.storage.db import make_engine, make_session_factory
from app.storage.publish import publish
from app.storage.redis_py import RedisPyClient
from tests.support.api import inside_one_rate_window
from tests.support.processes import dantaro_env
from tests.support.snapshots import build_snapshot
from tests.support.supervised import SupervisedApi, ask, connect_to
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
RECOMMENDATIONS = "/api/v1/recommendations?top_n=3"


def _run_id(sock: socket.socket, auth: dict[str, str]) -> str:
    response = ask(sock, "GET", RECOMMENDATIONS, auth)
    assert response.status == 200, response
    return str(json.loads(response.body)["run_id"])


def test_two_processes_share_runs_rate_limits_and_revocations(  # noqa: PLR0917
    tmp_path: Path,
    postgres_database_factory: Callable[[], str],
    redis_client: redis.Redis,
    worker_redis: RedisPyClient,
    redis_url: str,
    redis_prefix: str,
) -> None:
    url = postgres_database_factory()
    migrate.upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    cache = RedisCache(worker_redis, prefix=redis_prefix, ttl_s=300)
    publish(build_snapshot(run_id="run-a", bases=("BTC", "ETH")), session_factory=factory, cache=cache)
    with factory.begin() as session:
        keys = ApiKeyRepository(session)
        key_id, secret = keys.create(name="user-server", rate_limit_per_min=600)
        _, limited_secret = keys.create(name="small", rate_limit_per_min=3)
    auth, limited = ({"Authorization": f"Bearer {s}"} for s in (secret, limited_secret))
    settings = {"DANTARO_DATABASE_URL": url, "DANTARO_REDIS_URL": redis_url, "DANTARO_REDIS_PREFIX": redis_prefix}
    settings["DANTARO_API_KEEPALIVE_TIMEOUT_S"] = "60"  # the pinned connections outlive the wait for a rate window
    env = dantaro_env(tmp_path / "data", DANTARO_EXCHANGES="binance", DANTARO_LOG_LEVEL="WARNING", **settings)
    api = SupervisedApi(env, log_path=tmp_path / "api.log", workers=2).start()
    pids = api.alive_processes()
    try:
        assert pids is not None
        first, second = (connect_to(api.port, pid, candidates=pids) for pid in pids)
        with first, second:
            wait_for(lambda: redis_client.pubsub_numsub(cache.channel)[0][1] >= 2, timeout_s=10, what="subscriptions")
            assert _run_id(first, auth) == _run_id(second, auth) == "run-a"
            publish(build_snapshot(run_id="run-b", bases=("BTC", "ETH")), session_factory=factory, cache=cache)
            elapsed_s = wait_for(
                lambda: _run_id(first, auth) == _run_id(second, auth) == "run-b",
                timeout_s=1.0,
                what="both processes to serve run-b",
                poll_s=0.02,
            )
            assert elapsed_s < 0.5  # well inside the 1-s pointer check: the notification reached both

            inside_one_rate_window(clock=time.time)  # Redis counts per wall-clock minute
            statuses = [ask(sock, "GET", RECOMMENDATIONS, limited).status for sock in (first, second, first)]
            time.sleep(0.5)  # each process sent its hits and learned the shared total (every 0.1 s)
            refused = ask(second, "GET", RECOMMENDATIONS, limited)
            assert statuses == [200, 200, 200] and refused.status == 429

            with factory.begin() as session:
                assert ApiKeyRepository(session).revoke(key_id)
            wait_for(
                lambda: {ask(sock, "GET", RECOMMENDATIONS, auth).status for sock in (first, second)} == {401},
                timeout_s=1.5,
                what="the revocation to reach both processes",
                poll_s=0.05,
            )
    finally:
        api.kill()  # SIGKILL: the kernel stops its processes too (parent-death signal), no orphan keeps serving
        engine.dispose()
    wait_for(lambda: not any(psutil.pid_exists(pid) for pid in pids or []), timeout_s=30, what="the processes to exit")
