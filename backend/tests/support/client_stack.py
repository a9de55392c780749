"""A running API for the Python client's tests (``clients/python``), on both stacks: ``dantaro api`` as a
subprocess on SQLite with its in-process tiers ("embedded"), or on PostgreSQL + Redis. The test process publishes
runs as the worker does (``publish``), with a scored track record and stored candles of the bundled real prices.

The settings make the API's own 429 and 503 answers quick to retry: ``data_not_ready`` / ``data_stale`` carry
``Retry-After: 4`` (the schedule interval) and runs are stale 8 s after they were generated; ``too_many_streams``
carries ``Retry-After: 1`` (the heartbeat) with one open stream per key; a client address is throttled after 3
refused keys a minute.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import redis
from dantaro_client import AsyncDantaroClient, DantaroClient
from sqlalchemy.orm import Session, sessionmaker

from app.domain import Snapshot
from app.storage import migrate
from app.storage.cache import RedisCache, SnapshotCache
from app.storage.candles import CandleRepository
from app.storage.db import make_engine, make_session_factory
from app.storage.publish import publish
from app.storage.redis_py import RedisPyClient
from tests.support.api import Database, migrated_database
from tests.support.candles import closed
from tests.support.paths import REPO_ROOT
from tests.support.processes import ApiServer, dantaro_env
from tests.support.services import delete_keys, unavailable
from tests.support.snapshots import build_snapshot
from tests.support.storage import engine_database
from tests.support.track_rows import save_history, scored_history
from tests.support.waiting import wait_for

CLIENT_DIR = REPO_ROOT / "clients" / "python"
SETTINGS = {
    "DANTARO_EXCHANGES": "binance,upbit",  # upbit: configured, never published until a test does
    "DANTARO_ANALYSIS_INTERVAL_S": "4",
    "DANTARO_STREAM_HEARTBEAT_S": "1",
    "DANTARO_STREAM_MAX_PER_KEY": "1",
    "DANTARO_API_FAILED_KEYS_PER_MIN": "3",
}
RETRY_AFTER_NOT_READY_S = 4  # ceil(min(DANTARO_ANALYSIS_INTERVAL_S, 10))
STALE_AFTER_S = 8
HISTORY_RUNS = 12
CANDLE_BASES = ("BTC", "ETH")
STORED_CANDLES = 300
START_TIMEOUT_S = 90  # a loaded 2-core machine can take tens of seconds to start an API process


@dataclass
class ClientStack:
    """A running API, the database and cache it serves, the run it serves, and a key with a large budget."""

    name: str
    api: ApiServer
    database: Database
    cache: SnapshotCache | None
    current: Snapshot
    key: str

    def client(self, **options: Any) -> DantaroClient:
        """A blocking client of the API (``api_key`` defaults to the stack's key)."""
        return DantaroClient(self.api.base_url, **{"api_key": self.key, **options})

    def async_client(self, **options: Any) -> AsyncDantaroClient:
        """An asyncio client of the API (``api_key`` defaults to the stack's key)."""
        return AsyncDantaroClient(self.api.base_url, **{"api_key": self.key, **options})

    def new_key(self, *, rate_limit_per_min: int = 100_000) -> str:
        """A new API key's secret."""
        return self.database.create_key(name="client-test", rate_limit_per_min=rate_limit_per_min)[1]

    def publish(self, run: Snapshot, *, wait: bool = True) -> Snapshot:
        """Publish ``run`` as the worker does; with ``wait``, until the API serves it."""
        publish(run, session_factory=self.database.session_factory, cache=self.cache)
        if wait:
            wait_for(lambda: self.serves(run), timeout_s=15, what=f"the API to serve {run.run_id}", poll_s=0.05)
        if run.exchange == self.current.exchange:
            self.current = run
        return run

    def serves(self, run: Snapshot) -> bool:
        """Whether the API's current run of ``run.exchange`` is ``run`` (a plain HTTP request)."""
        url = f"{self.api.base_url}/api/v1/exchanges"
        answer = httpx2.get(url, headers={"Authorization": f"Bearer {self.key}"}, timeout=5)
        return any(row["run_id"] == run.run_id for row in answer.json()["exchanges"])


@dataclass
class Recorder:
    """httpx2 event hooks that note the status of every answer a client got (what retries and 304s look like)."""

    statuses: list[int] = field(default_factory=list)

    def sync_http(self) -> httpx2.Client:
        """An httpx2 client reporting to this recorder (pass as ``http_client=``)."""
        return httpx2.Client(event_hooks={"response": [self._note]})

    def async_http(self) -> httpx2.AsyncClient:
        """An httpx2 async client reporting to this recorder."""
        return httpx2.AsyncClient(event_hooks={"response": [self._note_async]})

    def _note(self, response: httpx2.Response) -> None:
        self.statuses.append(response.status_code)

    async def _note_async(self, response: httpx2.Response) -> None:
        self.statuses.append(response.status_code)


def _store_candles(session_factory: sessionmaker[Session], run: Snapshot) -> None:
    as_of_ms = int(run.data_as_of.timestamp() * 1000)
    with session_factory() as session:
        repository = CandleRepository(session)
        for base in CANDLE_BASES:
            for timeframe in ("1h", "1d"):
                candles = closed(base, timeframe, as_of_ms=as_of_ms)[-STORED_CANDLES:]
                repository.upsert(exchange=run.exchange, symbol=f"{base}/USDT", timeframe=timeframe, candles=candles)
        session.commit()


@contextmanager
def _running(
    name: str, directory: Path, database: Database, cache: SnapshotCache | None, **env: str
) -> Iterator[ClientStack]:
    run = build_snapshot(run_id="run-current")
    save_history(database.session_factory, run, scored_history(run, runs=HISTORY_RUNS))
    _store_candles(database.session_factory, run)
    publish(run, session_factory=database.session_factory, cache=cache)
    key = database.create_key(name="client-tests", rate_limit_per_min=100_000)[1]
    settings = dantaro_env(directory, DANTARO_DATABASE_URL=database.url, **SETTINGS, **env)
    api = ApiServer(settings, log_path=directory / "api.log")
    try:
        api.start(timeout_s=START_TIMEOUT_S)
        yield ClientStack(name, api, database, cache, run, key)
    finally:
        api.kill()


@contextmanager
def embedded_stack(directory: Path) -> Iterator[ClientStack]:
    """The API on a SQLite file with its in-process tiers (no Redis)."""
    with migrated_database(directory) as database, _running("embedded", directory, database, None) as stack:
        yield stack


@contextmanager
def postgres_stack(directory: Path, *, database_url: str, redis_url: str) -> Iterator[ClientStack]:
    """The API on a fresh PostgreSQL database and Redis under a throwaway key prefix (deleted afterwards)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        unavailable(f"Redis at {redis_url} unreachable: {exc}")
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    prefix = f"dantaro_test_{secrets.token_hex(6)}"
    cache = RedisCache(RedisPyClient(client), prefix=prefix, ttl_s=300)  # the worker's client publishes
    database = Database(database_url, make_session_factory(engine), engine_database(engine))
    try:
        with _running(
            "postgres", directory, database, cache, DANTARO_REDIS_URL=redis_url, DANTARO_REDIS_PREFIX=prefix
        ) as stack:
            yield stack
    finally:
        delete_keys(client, prefix)
        client.close()
        engine.dispose()
