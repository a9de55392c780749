"""Shared fixtures: real databases (SQLite file, throwaway PostgreSQL database), real caches (in-process, Redis
under a throwaway key prefix), Snapshots of the bundled real candles (``make_snapshot``), the API's database.

Services come from ``DANTARO_TEST_POSTGRES_URL`` (admin URL; a ``dantaro_test_<hex>`` database is created and
dropped) and ``DANTARO_TEST_REDIS_URL``. An unreachable service skips its tests, unless
``DANTARO_REQUIRE_SERVICES=1``, then they fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from functools import cache as memoize
from pathlib import Path

import psycopg2
import pytest
import redis
import structlog
from sqlalchemy.engine import make_url

from app import logging as app_logging
from app.storage import migrate
from app.storage.cache import MemoryCache, RedisCache, SnapshotCache
from app.storage.db import make_engine, make_session_factory
from app.storage.redis_client import RedisClient
from app.storage.redis_py import RedisPyClient
from tests.support.api import Database, migrated_database
from tests.support.services import delete_keys, unavailable
from tests.support.snapshots import MakeSnapshot, build_snapshot
from tests.support.storage import StorageBackend, empty_tables

app_logging.CACHE_LOGGERS = False  # commands run in-process must not hide later tests' logs from capture_logs


@pytest.fixture(autouse=True)
def _structlog_config_restored() -> Iterator[None]:
    """Each test leaves structlog as it found it: a command run in-process configures logging (e.g. at WARNING, whose
    filtering logger would drop a later test's info events before ``capture_logs`` sees them)."""
    config = structlog.get_config()
    yield
    structlog.configure(**config)


DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


# --- PostgreSQL -------------------------------------------------------------------------------------------


def _admin_url() -> str:
    return os.environ.get("DANTARO_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _admin_dsn() -> str:
    return make_url(_admin_url()).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin_execute(sql: str) -> None:
    connection = psycopg2.connect(_admin_dsn(), connect_timeout=3)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


@memoize
def _postgres_problem() -> str | None:
    try:
        _admin_execute("SELECT 1")
    except psycopg2.Error as exc:
        return f"PostgreSQL at {make_url(_admin_url()).render_as_string()} unreachable: {str(exc).strip()}"
    return None


@pytest.fixture(scope="session")
def postgres_database_factory() -> Iterator[Callable[[], str]]:
    """Creates throwaway PostgreSQL databases (URL returned), all dropped at session end."""
    created: list[str] = []

    def create() -> str:
        problem = _postgres_problem()
        if problem:
            unavailable(problem)
        name = f"dantaro_test_{secrets.token_hex(6)}"
        _admin_execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)

    yield create
    for name in created:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_migrated_url(postgres_database_factory: Callable[[], str]) -> str:
    """One migrated PostgreSQL database shared by the session (tables emptied before each test)."""
    url = postgres_database_factory()
    migrate.upgrade(url)
    return url


# --- SQLite and the parametrized backends ------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that tests copy (migrating once keeps the suite fast)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageBackend]:
    """A migrated, empty database on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "db" / "dantaro.sqlite3"
        path.parent.mkdir()
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_migrated_url")
    engine = make_engine(url)
    if request.param == "postgres":
        empty_tables(engine)
    try:
        yield StorageBackend(request.param, url, engine, make_session_factory(engine))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a brand-new, never-migrated database on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh' / 'dantaro.sqlite3'}"
    factory: Callable[[], str] = request.getfixturevalue("postgres_database_factory")
    return factory()


# --- Redis and the parametrized caches ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis URL."""
    return os.environ.get("DANTARO_TEST_REDIS_URL", DEFAULT_REDIS_URL)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A redis-py client for the test Redis, to look at what our code stored (skips or fails when unreachable)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        unavailable(f"Redis at {redis_url} unreachable: {exc}")
    yield client
    client.close()


@pytest.fixture
def resp_client(redis_client: redis.Redis, redis_url: str) -> Iterator[RedisClient]:
    """The API's client (``app.storage.redis_client``) for the test Redis."""
    client = RedisClient.from_url(redis_url, timeout_s=2.0)
    yield client
    client.close()


@pytest.fixture
def worker_redis(redis_client: redis.Redis, redis_url: str) -> Iterator[RedisPyClient]:
    """The worker's client (redis-py behind ``app.storage.redis_py``) for the test Redis."""
    client = RedisPyClient.from_url(redis_url, timeout_s=2.0)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A throwaway key prefix; every key under it is deleted afterwards."""
    prefix = f"dantaro_test_{secrets.token_hex(6)}"
    yield prefix
    delete_keys(redis_client, prefix)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def cache(request: pytest.FixtureRequest) -> SnapshotCache:
    """An empty snapshot cache: in-process, and Redis through the API's client."""
    if request.param == "memory":
        return MemoryCache()
    client: RedisClient = request.getfixturevalue("resp_client")
    return RedisCache(client, prefix=request.getfixturevalue("redis_prefix"), ttl_s=300)


# --- Snapshots of real candles and the API's database -------------------------------------------------------


@pytest.fixture
def make_snapshot() -> MakeSnapshot:
    """``tests.support.snapshots.build_snapshot``: ``make_snapshot(run_id=..., as_of_ms=..., bases=..., ...)``."""
    return build_snapshot


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database for API tests (``tests.support.api.Database``: publish snapshots, create keys)."""
    with migrated_database(tmp_path) as db:
        yield db
