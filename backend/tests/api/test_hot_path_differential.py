"""The hot path against FastAPI alone: the same requests to two apps on the same data, one with the hot path
(``DANTARO_API_HOT_PATH=true``) and one without, must get byte-identical answers — status, every header but
``date``/``server`` (in order) and the raw (possibly gzipped) body. Each pair runs two ways: in-process through ASGI
(``TestClient``, CORS configured: every hit goes through the layers), and behind the real server configuration
(``app.server.server_config`` in a thread, no CORS), where hits without gzip are written by the server's protocol at
once (``answer_now``) and the test requires such hits on every endpoint.

Every GET data endpoint, valid and invalid parameters, every auth case (none, malformed, wrong, revoked, valid,
rate-limited), with and without ``If-None-Match`` and ``Accept-Encoding`` (gzip, ``gzip;q=0``, identity), across a
new run, a new exchange and the data going stale; on SQLite + the in-process cache and on PostgreSQL + Redis. Both
apps read one frozen wall clock, and keys and budgets count on a hand-moved clock, so the answers are deterministic.
Each request to the hot app is classified by the ``dantaro_api_hot_path_total`` counter, and the test requires hits
on every endpoint, so it cannot pass with the hot path silently passing everything on.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from app.api.app import ApiState, DantaroApi, create_app
from app.api.auth import KeyVerifier, database_key_lookup
from app.api.ratelimit import RateLimiter
from app.config import DEVELOPMENT_KEY, Settings
from app.domain import utc_now
from app.server import server_config
from app.storage.cache import MemoryCache, RedisCache, SnapshotCache
from app.storage.db import make_engine, make_session_factory
from tests.support.api import make_settings
from tests.support.clocks import ManualClock
from tests.support.differential import API, Pair, Stack, WallClock, answered
from tests.support.network import serving_in_thread
from tests.support.snapshots import build_snapshot
from tests.support.storage import empty_tables, engine_database
from tests.support.track_rows import save_history, scored_history
from tests.support.waiting import wait_for

DEV = f"Bearer {DEVELOPMENT_KEY}"
ENCODINGS = (None, "gzip", "gzip;q=0", "identity", "br, gzip;q=0.5")
EXCHANGES = ["binance", "bybit"]  # bybit publishes its first run in the middle of the test


@pytest.fixture(
    params=["sqlite-memory", pytest.param("postgres-redis", marks=[pytest.mark.postgres, pytest.mark.redis])]
)
def stack(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Stack]:
    """SQLite with the in-process cache of ``dantaro run``, or PostgreSQL with Redis."""
    if request.param == "sqlite-memory":
        path = tmp_path / "differential.sqlite3"
        path.write_bytes(sqlite_template.read_bytes())
        url, shared = f"sqlite:///{path}", MemoryCache()
        caches: list[SnapshotCache] = [shared]
        overrides: dict[bool, dict[str, Any]] = {True: {}, False: {}}
    else:
        url, shared = request.getfixturevalue("postgres_migrated_url"), None
        prefixes = {hot: f"{request.getfixturevalue('redis_prefix')}:{hot}" for hot in (True, False)}
        client = request.getfixturevalue("worker_redis")
        caches = [RedisCache(client, prefix=prefix, ttl_s=300) for prefix in prefixes.values()]
        redis_url = request.getfixturevalue("redis_url")
        overrides = {hot: {"redis_url": redis_url, "redis_prefix": prefix} for hot, prefix in prefixes.items()}
    engine = make_engine(url)
    if request.param != "sqlite-memory":
        empty_tables(engine)
    try:
        yield Stack(
            request.param, url, make_session_factory(engine), engine_database(engine), caches, shared, overrides
        )
    finally:
        engine.dispose()


def _settings(stack: Stack, *, hot: bool, cors: bool) -> Settings:
    return make_settings(
        stack.url,
        exchanges=EXCHANGES,
        api_hot_path=hot,
        cors_origins=["https://app.example.com"] if cors else [],
        api_failed_keys_per_min=1_000_000,  # the pair sends every bad key twice; the throttle has its own tests
        **stack.overrides[hot],
    )


def _state(stack: Stack, settings: Settings, pair_clocks: tuple[WallClock, ManualClock]) -> ApiState:
    wall, keys_clock = pair_clocks
    keys = KeyVerifier(
        lookup=database_key_lookup(stack.database),
        dev_key_active=settings.dev_key_active(),
        clock=keys_clock,
        spawn=lambda job: job(),  # re-checks run at once: both apps see a revocation at the same request
    )
    limiter = RateLimiter(clock=keys_clock)
    return ApiState(cache=stack.state_cache, keys=keys, limiter=limiter, clock=wall)


@contextmanager
def _client(app: DantaroApi, settings: Settings, *, way: str) -> Iterator[httpx2.Client]:
    """A client of ``app``: in-process (``asgi``), or over loopback to the real server configuration (``server``)."""
    if way == "asgi":
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
        return
    config = server_config(app, settings, host="127.0.0.1", port=0)
    with serving_in_thread(config) as port, httpx2.Client(base_url=f"http://127.0.0.1:{port}") as client:
        yield client


@pytest.fixture(params=["asgi", "server"])
def pair(request: pytest.FixtureRequest, stack: Stack) -> Iterator[Pair]:
    """The two apps on ``stack``, running, reached one way (``asgi`` or ``server``)."""
    current = build_snapshot(run_id="run-current")
    save_history(stack.session_factory, current, scored_history(current, runs=36))
    stack.publish(current)
    clocks = (WallClock(utc_now()), ManualClock())
    with ExitStack() as running:
        apps, clients = [], []
        for hot in (True, False):
            settings = _settings(stack, hot=hot, cors=request.param == "asgi")
            app = create_app(settings, state=_state(stack, settings, clocks))
            client = running.enter_context(_client(app, settings, way=request.param))
            client.headers.pop("accept-encoding", None)  # each case says what it accepts
            apps.append(app)
            clients.append(client)
        yield Pair(request.param, clients[0], clients[1], apps[0], apps[1], *clocks)


def _urls(cursor: str | None) -> list[str]:
    """Every GET data endpoint with valid and invalid parameters."""
    recommendations = [
        "", "top_n=10", "top_n=1", "top_n=100", "top_n=0", "top_n=101", "top_n=abc", "top_n=+10", "top_n=010",
        "top_n=10&top_n=20", "top_n=1e1", "min_score=0.5", "min_score=1", "min_score=1.5", "min_score=-0.1",
        "min_score=.5", "label=BUY", "label=HOLD", "label=buy", "label=", "horizon=4h", "horizon=24h",
        "horizon=1h&top_n=5&min_score=0.1&label=HOLD", "horizon=7d", "horizon=4x", "exchange=binance",
        "exchange=BINANCE", "exchange=%20binance", "exchange=bybit", "exchange=nope", "exchange=", "use_cache=true",
        "use_cache=1", "use_cache=false", "use_cache=maybe", "unknown=1", "top_n=%31%30",
    ]  # fmt: skip
    levels = [
        "BTC", "BTC-USDT", "BTC_USDT", "USDT-BTC", "BTC%2FUSDT", "btc", "ETH?exchange=binance", "NOPE", "B@D",
        "BTC/", "BTC?use_cache=false", "BTC?exchange=bybit", "BTC?top_n=3", "X" * 70,
    ]  # fmt: skip
    track = ["", "days=7", "days=0", "days=366", "horizon=4h", "horizon=9h", "exchange=bybit", "days=07"]
    runs = ["", "limit=5", "limit=0", "limit=201", "before=garbage", "limit=5&before=" + (cursor or "x")]
    return [
        *(f"{API}/recommendations?{query}".rstrip("?") for query in recommendations),
        *(f"{API}/support-levels/{symbol}" for symbol in levels),
        *(f"{API}/market-status?{query}".rstrip("?") for query in ("", "exchange=binance", "exchange=bybit", "x=1")),
        *(f"{API}/symbols?{query}".rstrip("?") for query in ("", "horizon=4h", "horizon=9h", "use_cache=false")),
        f"{API}/exchanges",
        f"{API}/exchanges?x=1",
        *(f"{API}/track-record?{query}".rstrip("?") for query in track),
        *(f"{API}/track-record/runs?{query}".rstrip("?") for query in runs),
        *(f"{API}/track-record/symbols/{symbol}" for symbol in ("BTC", "ETH-USDT", "BTC?days=7", "NOPE")),
    ]


def _cursor(pair: Pair) -> str | None:
    _, _, body = pair.same(f"{API}/track-record/runs?limit=5", {"Authorization": DEV})
    import orjson

    cursor = orjson.loads(body)["next_before"]
    return str(cursor) if cursor else None


def _conditional_and_encodings(pair: Pair, url: str) -> None:
    """``url`` with every Accept-Encoding, with and without a matching, a wildcard and a foreign If-None-Match."""
    _, headers, _ = pair.same(url, {"Authorization": DEV})
    tags = [None, '"not-this-one"', "*"] + ([headers["etag"], f'"x", {headers["etag"]}'] if "etag" in headers else [])
    for encoding, tag in itertools.product(ENCODINGS, tags):
        sent = {"Authorization": DEV}
        if encoding is not None:
            sent["Accept-Encoding"] = encoding
        if tag is not None:
            sent["If-None-Match"] = tag
        pair.same(url, sent)


def test_every_endpoint_parameter_and_header_answers_as_fastapi_does(pair: Pair, stack: Stack) -> None:
    urls = _urls(_cursor(pair))
    for url in urls:
        _conditional_and_encodings(pair, url)
        pair.same(url, {"Authorization": DEV, "Origin": "https://app.example.com", "Accept-Encoding": "gzip"})
        pair.same(url, {"Authorization": DEV, "X-Request-ID": "not a sane id!"})
    _new_run_and_exchange(pair, stack)
    for url in urls:
        pair.same(url, {"Authorization": DEV})
        pair.same(url, {"Authorization": DEV, "Accept-Encoding": "gzip"})
    pair.wall.now += timedelta(hours=3)  # the data goes stale: the prepared answers must follow
    for url in urls:
        pair.same(url, {"Authorization": DEV, "Accept-Encoding": "gzip, deflate"})
    _hits_on_every_endpoint(pair)
    for method in ("HEAD", "POST", "OPTIONS"):  # never the hot path's
        pair.same(f"{API}/market-status", {"Authorization": DEV}, method=method)
    bundle = b'{"include_market_status": true, "symbols": ["BTC"], "include_support_levels": true}'
    sent = {"Authorization": DEV, "Content-Type": "application/json"}
    pair.same(f"{API}/bundle", sent, method="POST", body=bundle)
    assert _counted(pair.hot_app) == _counted(pair.plain_app)


def _new_run_and_exchange(pair: Pair, stack: Stack) -> None:
    """A new binance run and bybit's first run; both apps must serve them before the test goes on."""
    stack.publish(build_snapshot(run_id="run-next", generated_at=pair.wall.now - timedelta(seconds=2)))
    stack.publish(build_snapshot(run_id="run-bybit", exchange="bybit", bases=("BTC", "ETH")))

    def serving(client: httpx2.Client, exchange: str, run_id: str) -> bool:
        response = client.get(f"{API}/market-status?exchange={exchange}", headers={"Authorization": DEV})
        return response.status_code == 200 and response.json()["run_id"] == run_id

    for client in (pair.hot, pair.plain):
        wait_for(lambda: serving(client, "binance", "run-next"), timeout_s=10, what="the new run")  # noqa: B023
        wait_for(lambda: serving(client, "bybit", "run-bybit"), timeout_s=10, what="bybit's run")  # noqa: B023


def _hits_on_every_endpoint(pair: Pair) -> None:
    """Hits on every endpoint (behind the server: hits written at once among them), and most valid requests hit."""
    hits = ("answered", "answered_at_once")
    routes = {route for route, _ in pair.seen}
    missing = sorted(route for route in routes if sum(pair.seen[(route, outcome)] for outcome in hits) == 0)
    assert not missing, f"the hot path answered nothing on {missing}: {pair.seen}"
    if pair.way == "server":
        at_once = sorted(route for route in routes if pair.seen[(route, "answered_at_once")] == 0)
        assert not at_once, f"the server's protocol answered nothing at once on {at_once}: {pair.seen}"
    hit_count = sum(count for (_, outcome), count in pair.seen.items() if outcome in hits)
    assert hit_count > 0.4 * sum(pair.seen.values()), pair.seen  # about half the matrix is plain valid requests


COUNTED = ("dantaro_api_requests_total", "dantaro_api_snapshot_reads_total", "dantaro_api_cache_fallbacks_total",
           "dantaro_api_rate_limited_total", "dantaro_api_request_duration_seconds_count")  # fmt: skip


def _counted(app: DantaroApi) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The request, read and refusal counts of ``app`` (what the hot path must keep counting)."""
    registry = app.state.runtime.metrics.registry
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name in COUNTED
    }


@pytest.fixture
def urls_per_route() -> list[str]:
    """One valid request per endpoint."""
    return [
        f"{API}/recommendations?top_n=3",
        f"{API}/support-levels/BTC",
        f"{API}/market-status",
        f"{API}/symbols",
        f"{API}/track-record",
        f"{API}/track-record/runs",
        f"{API}/track-record/symbols/BTC",
    ]


def test_every_auth_case_answers_as_fastapi_does(pair: Pair, stack: Stack, urls_per_route: list[str]) -> None:
    key_id, secret = stack.create_key(rate_limit_per_min=600)
    revoked_id, revoked = stack.create_key(rate_limit_per_min=600)
    cases = [
        {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer "},
        {"Authorization": "Basic " + secret}, {"Authorization": "Bearer wrong-" + secret},
        {"Authorization": "Bearer " + "k" * 300}, {"Authorization": "bearer " + secret},
        {"Authorization": f"Bearer  {secret}  "}, {"Authorization": DEV}, {"Authorization": "Bearer " + secret},
        {"Authorization": "Bearer " + revoked},
    ]  # fmt: skip
    for url in urls_per_route:
        for headers in cases:
            pair.same(url, headers)
    stack.revoke(revoked_id)
    for step_s in (0.0, 0.6, 0.6):  # cached, then served once while the re-check drops it, then refused
        pair.keys_clock.now_s += step_s
        statuses = {pair.same(url, {"Authorization": "Bearer " + revoked})[0] for url in urls_per_route}
        pair.same(f"{API}/support-levels/BTC", {"Authorization": "Bearer " + secret})
    assert statuses == {401}
    assert pair.seen[("/support-levels", "answered")] + pair.seen[("/support-levels", "answered_at_once")] > 0
    del key_id


def test_a_spent_budget_is_a_429_from_both(pair: Pair, stack: Stack) -> None:
    _, secret = stack.create_key(rate_limit_per_min=4)
    auth = {"Authorization": "Bearer " + secret}
    statuses = [pair.same(f"{API}/market-status", auth)[0] for _ in range(6)]
    assert statuses == [200, 200, 200, 200, 429, 429]
    pair.keys_clock.now_s += 60  # the next minute's budget
    assert pair.same(f"{API}/market-status", auth)[0] == 200
    assert pair.seen[("/market-status", "answered")] + pair.seen[("/market-status", "answered_at_once")] >= 3
    assert _counted(pair.hot_app) == _counted(pair.plain_app)


def test_the_request_log_is_the_same(pair: Pair) -> None:
    events = []
    for client in (pair.hot, pair.plain):
        for _ in range(2):  # the first request loads the run: FastAPI answers it on both
            with capture_logs() as captured:
                client.get(f"{API}/symbols?horizon=4h", headers={"Authorization": DEV, "X-Request-ID": "log-1"})
        events.append([{**event, "latency_ms": None} for event in captured if event["event"] == "request"])
    assert events[0] == events[1] and len(events[0]) == 1
    assert events[0][0]["key_id"] == "development" and events[0][0]["route"] == f"{API}/symbols"
    assert answered(pair.hot_app) == 1
