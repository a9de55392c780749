"""``dantaro healthcheck worker``: healthy only with a fresh heartbeat from this host; the replay clock that
several workers share (derived from the stored candles)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from app.config import BUNDLED_DATA_DIR, Settings
from app.domain import timeframe_ms, utc_now
from app.exchange.replay import ReplaySource
from app.storage import migrate
from app.storage.db import make_engine, make_session_factory
from app.storage.repositories import HeartbeatRepository
from app.worker.healthcheck import worker_health
from tests.support.paths import REPO_ROOT
from tests.support.storage import StorageBackend

HOUR_MS = timeframe_ms("1h")


def _beat(backend: StorageBackend, worker_id: str, *, age_s: float, now: datetime | None = None) -> None:
    now = now or utc_now()
    with backend.session_factory() as session:
        HeartbeatRepository(session).beat(
            worker_id=worker_id,
            hostname=worker_id.split(":", maxsplit=1)[0],
            pid=1,
            started_at=now - timedelta(hours=1),
            state="running",
            current_run_id=None,
            beat_at=now - timedelta(seconds=age_s),
        )
        session.commit()


def test_health_needs_a_recent_beat_from_this_host(backend: StorageBackend) -> None:
    settings = Settings(_env_file=None, database_url=backend.url, heartbeat_interval_s=10)
    healthy, reason = worker_health(settings, hostname="box", now=utc_now())
    assert not healthy and reason == "no worker heartbeat from host box"
    now = utc_now()  # one instant for the beats and the check: a slow machine must not age the beat by a second
    _beat(backend, "box:10", age_s=45, now=now)
    _beat(backend, "boxer:11", age_s=1, now=now)  # another host whose name starts alike does not count
    healthy, reason = worker_health(settings, hostname="box", now=now)
    assert not healthy and reason.startswith("worker box:10 last beat 45 s ago (limit 30 s)")
    _beat(backend, "box:12", age_s=5)
    healthy, reason = worker_health(settings, hostname="box", now=utc_now())
    assert healthy and reason.startswith("ok: worker box:12")


def test_cli_exit_codes_and_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dantaro.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANTARO_")}
    env.update(DANTARO_DATABASE_URL=url, PYTHONPATH=str(REPO_ROOT / "backend"))
    command = [sys.executable, "-m", "app.cli", "healthcheck", "worker"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)

    unmigrated = run()
    assert unmigrated.returncode == 1 and unmigrated.stderr.startswith("database unavailable:")
    assert len(unmigrated.stderr.strip().splitlines()) == 1
    migrate.upgrade(url)
    assert run().returncode == 1
    engine = make_engine(url)
    try:
        backend = StorageBackend("sqlite", url, engine, make_session_factory(engine))
        _beat(backend, f"{socket.gethostname()}:4242", age_s=2)
    finally:
        engine.dispose()
    healthy = run()
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.startswith(f"ok: worker {socket.gethostname()}:4242")


async def test_replay_clock_follows_the_stored_position_not_its_own_history() -> None:
    def source() -> ReplaySource:
        return ReplaySource(data_dir=BUNDLED_DATA_DIR, timeframes=["1h"], step_timeframe="1h", warmup_candles=300)

    first, second = source(), source()
    try:
        start_ms = await first.start_cycle(stored_until_ms=None)  # nothing stored: the warm-up start
        assert await second.start_cycle(stored_until_ms=None) == start_ms
        # worker 1 stored up to start + 5 h; worker 2, whose own clock is far behind, continues from there
        assert await second.start_cycle(stored_until_ms=start_ms + 5 * HOUR_MS) == start_ms + 6 * HOUR_MS
        # and worker 1, whose own clock would say start + 1 h, does not go backwards either
        assert await first.start_cycle(stored_until_ms=start_ms + 6 * HOUR_MS) == start_ms + 7 * HOUR_MS
        assert await first.start_cycle(stored_until_ms=start_ms - 50 * HOUR_MS) == start_ms  # never before warm-up
        _, end_ms = await first._bounds()
        assert await first.start_cycle(stored_until_ms=end_ms) == end_ms  # never past the data
    finally:
        await first.close()
        await second.close()
