"""A deploy under load loses no request: ``deploy.sh --prefix`` upgrades a running ``dantaro api --workers 2``
(PostgreSQL + Redis, started from the installed release like the unit does) to a second release while wrk (or the
Python load generator without it) loads it, then refuses a broken third release and rolls back to the second, still
under load. Every request is answered 2xx, with no socket error, and the processes run the release ``current``
points to. (Under systemd the same ``dantaro api-reload`` runs; the systemd harness is its own test.)
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from app.storage.api_keys import ApiKeyRepository
from app.storage.cache import RedisCache
from app.storage.db import make_engine, make_session_factory
from app.storage.publish import publish
from app.storage.redis_py import RedisPyClient
from benchmarks.load_generators import Endpoint, background_load
from tests.ops.test_deploy import _deploy, _live, source  # noqa: F401  (source: the fixture)
from tests.support.snapshots import build_snapshot
from tests.support.supervised import SupervisedApi

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
LOADED = Endpoint("recommendations", "GET", "/api/v1/recommendations?top_n=10")


def _release_of(pid: int) -> str:
    """The release directory a process runs (the release wrapper execs ``<release>/.venv/bin/python``), checked
    against its working directory (the release folder too)."""
    release = Path(psutil.Process(pid).cmdline()[0]).parent.parent.parent.name
    assert Path(psutil.Process(pid).cwd()).name == release
    return release


@pytest.fixture
def installed(
    source: Path,  # noqa: F811
    postgres_database_factory: Callable[[], str],
    redis_url: str,
    redis_prefix: str,
    worker_redis: RedisPyClient,
) -> Iterator[tuple[Path, str]]:
    """The first release installed under a prefix on a fresh PostgreSQL database, one run published (database and
    Redis); yields the prefix and an API key."""
    database_url = postgres_database_factory()
    prefix = source.parent / "root"
    (prefix / "etc" / "dantaro").mkdir(parents=True)
    settings = {
        "DANTARO_ENV": "development",
        "DANTARO_DATABASE_URL": database_url,
        "DANTARO_REDIS_URL": redis_url,
        "DANTARO_REDIS_PREFIX": redis_prefix,
        "DANTARO_EXCHANGES": "binance",
        "DANTARO_API_WORKERS": "2",
        "DANTARO_LOG_FORMAT": "json",
        "DANTARO_LOG_LEVEL": "WARNING",
    }
    (prefix / "etc" / "dantaro" / "dantaro.env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    first = _deploy(source, prefix)
    assert first.returncode == 0, first.stdout + first.stderr
    engine = make_engine(database_url)
    try:
        factory = make_session_factory(engine)
        cache = RedisCache(worker_redis, prefix=redis_prefix, ttl_s=600)
        publish(build_snapshot(run_id="run-1", bases=("BTC", "ETH", "SOL")), session_factory=factory, cache=cache)
        with factory.begin() as session:
            _, secret = ApiKeyRepository(session).create(name="load", rate_limit_per_min=1_000_000_000)
    finally:
        engine.dispose()
    yield prefix, secret


def test_an_upgrade_and_a_rolled_back_broken_release_lose_no_request(
    installed: tuple[Path, str],
    source: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix, secret = installed
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANTARO_")}
    env.update(
        DANTARO_ENV_FILE=str(prefix / "etc" / "dantaro" / "dantaro.env"),
        DANTARO_DATA_DIR=str(prefix / "var" / "lib" / "dantaro"),
    )
    api = SupervisedApi(env, log_path=tmp_path / "api.log", workers=2)
    api.program = [str(prefix / "opt" / "dantaro-central" / "current" / "bin" / "dantaro")]
    api.start()
    try:
        headers = {"Authorization": f"Bearer {secret}"}
        with background_load(LOADED, port=api.port, headers=headers, connections=16) as results:
            (source / "docs" / "upgrade-note.md").write_text("a change that makes a second release\n")
            upgraded = _deploy(source, prefix)
            second = _live(prefix)
            upgraded_processes = api.alive_processes() or []
            upgraded_releases = {_release_of(pid) for pid in upgraded_processes}
            app_file = source / "backend" / "app" / "api" / "app.py"
            app_file.write_text(app_file.read_text() + "\nraise RuntimeError('broken release')\n")
            broken = _deploy(source, prefix)
            after_rollback = {_release_of(pid) for pid in api.alive_processes() or []}
            supervisor_in = Path(psutil.Process(api.state().pid).cwd()).name
        stopped = api.stop()
    finally:
        api.kill(signal.SIGTERM)
    (load,) = results
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert "api-reload: reloaded in" in upgraded.stdout
    assert broken.returncode == 1 and "rolling back" in broken.stderr, broken.stdout + broken.stderr
    assert "the new process exited with status 1 before it was ready" in broken.stderr
    assert _live(prefix) == second
    assert len(upgraded_processes) == 2 and upgraded_releases == {Path(second).name}
    assert after_rollback == {Path(second).name} and supervisor_in == Path(second).name
    assert load.requests > 200 and load.errors == 0, load
    assert stopped == 0
