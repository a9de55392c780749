"""What ``performance_test.py`` runs against: its own PostgreSQL database and Redis key prefix, one real analysis
run published by the worker, an API key, and the environment of the API and worker processes.

Everything created is removed when the context managers exit. The API's log level is the run's (``--log-level``);
below WARNING its standard error goes to a file in the run's data directory (``api_log_path``), as journald would
take it, so a request line per request costs what it costs in production.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy.engine import make_url

from app.storage import migrate
from app.storage.api_keys import ApiKeyRepository
from app.storage.db import make_engine, make_session_factory

BIN = Path(sys.executable).parent
DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


@dataclass(frozen=True)
class Environment:
    """What the run uses: database URL, Redis URL and prefix, data directory, and the API's log level."""

    database_url: str
    redis_url: str
    redis_prefix: str
    data_dir: Path
    log_level: str = "WARNING"  # the API's (``--log-level``); the worker that prepares the run logs warnings only


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new PostgreSQL database (URL), dropped afterwards."""
    import psycopg2

    admin = make_url(os.environ.get("DANTARO_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"dantaro_perf_{secrets.token_hex(4)}"

    def execute(sql: str) -> None:
        connection = psycopg2.connect(dsn, connect_timeout=3)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

    execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_prefix(url: str) -> Iterator[str]:
    """A throwaway Redis key prefix; its keys are deleted afterwards."""
    prefix = f"dantaro_perf_{secrets.token_hex(4)}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


def service_env(env: Environment, *, api: bool = True) -> dict[str, str]:
    """Environment of the API (``api``) and worker subprocesses."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DANTARO_")},
        "DANTARO_ENV": "production",
        "DANTARO_DEV_KEY_ENABLED": "false",
        "DANTARO_DATABASE_URL": env.database_url,
        "DANTARO_REDIS_URL": env.redis_url,
        "DANTARO_REDIS_PREFIX": env.redis_prefix,
        "DANTARO_DATA_DIR": str(env.data_dir),
        "DANTARO_ANALYSIS_INTERVAL_S": "600",  # the run stays fresh (and its Redis pointer alive) for the test
        "DANTARO_LOG_LEVEL": env.log_level if api else "WARNING",
        "DANTARO_LOG_FORMAT": "json",
    }


def prepare(env: Environment) -> str:
    """Migrate, publish one real run with the worker, create a key; returns the key's secret."""
    migrate.upgrade(env.database_url)
    started = time.monotonic()
    subprocess.run([str(BIN / "dantaro"), "worker", "--once"], env=service_env(env, api=False), check=True, timeout=600)
    print(f"published one run with `dantaro worker --once` in {time.monotonic() - started:.1f} s", flush=True)
    engine = make_engine(env.database_url)
    try:
        with make_session_factory(engine).begin() as session:
            _, secret = ApiKeyRepository(session).create(name="performance-test", rate_limit_per_min=1_000_000_000)
    finally:
        engine.dispose()
    return secret


def api_log_path(env: Environment) -> Path | None:
    """Where the API's standard error goes: a file in the run's data directory below WARNING, else the console."""
    return None if env.log_level == "WARNING" else env.data_dir / "api.log"


def log_summary(path: Path) -> str:
    """How many lines (and request lines) and bytes the API logged to ``path``."""
    lines = requests = 0
    with path.open("rb") as log:  # read line by line: an INFO run writes about 900 MB
        for line in log:
            lines += 1
            requests += b'"event":"request"' in line
    return f"{lines} lines ({requests} request lines), {path.stat().st_size / 1e6:.1f} MB"
