"""``dantaro track-record backfill`` as a real process: plain progress lines, idempotent, and killed mid-way
(SIGKILL after its first committed run) a rerun finishes with exactly the rows of an uninterrupted scoring."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from app.cli.main import main
from app.config import get_settings
from app.storage.models import RunScoreModel
from tests.support.candles import copy_replay_pairs
from tests.support.paths import REPO_ROOT
from tests.support.processes import DANTARO, dantaro_env
from tests.support.scoring import SCORED_BASES, Deployment
from tests.support.storage import StorageBackend

RUNS = 40
BOUNCE = 3


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_replay_pairs(tmp_path_factory.mktemp("replay"), SCORED_BASES)


async def _published(backend: StorageBackend, replay_dir: Path, runs: int) -> Deployment:
    deployment = Deployment(backend, replay_dir)
    try:
        await deployment.cycles(runs)
    finally:
        await deployment.close()
    return deployment


def _forget_scores(backend: StorageBackend) -> None:
    with backend.session_factory() as session:
        session.execute(delete(RunScoreModel))  # the outcomes go with them (ON DELETE CASCADE)
        session.commit()


@pytest.fixture
def configured(backend: StorageBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[StorageBackend]:
    """``dantaro`` run in this process on the test database."""
    monkeypatch.setenv("DANTARO_DATABASE_URL", backend.url)
    monkeypatch.setenv("DANTARO_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    yield backend
    get_settings.cache_clear()


def _backfill(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    capsys.readouterr()  # what the cycles logged before
    assert main(["track-record", "backfill", *args]) == 0
    return capsys.readouterr().out.strip().splitlines()


async def test_backfill_prints_plain_progress_and_is_idempotent(
    configured: StorageBackend, replay_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment = await _published(configured, replay_dir, 8)
    lines = _backfill(capsys, "--exchange", "binance")
    assert lines[:2] == ["track-record binance: 1/4 runs", "track-record binance: 2/4 runs"]
    assert lines[-1] == "track-record binance: 4 runs scored (5 horizon scores), 0 waiting for candles"
    rows = deployment.rows()
    assert _backfill(capsys) == ["track-record binance: 0 runs scored (0 horizon scores), 0 waiting for candles"]
    assert deployment.rows() == rows


async def test_backfill_killed_mid_way_resumes_without_loss_or_duplicates(
    configured: StorageBackend, replay_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = configured
    deployment = await _published(backend, replay_dir, RUNS)
    deployment.scorer().score_pending()
    reference = deployment.rows(with_scored_at=False)
    total = RUNS - 1 - BOUNCE  # the runs whose 1h window (the exit candle and three more) is stored
    _forget_scores(backend)
    env = dantaro_env(tmp_path, DANTARO_DATABASE_URL=backend.url, DANTARO_REPLAY_DATA_DIR=str(replay_dir))
    args = [*DANTARO, "track-record", "backfill", "--exchange", "binance"]
    process = subprocess.Popen(
        args, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    first_line = process.stdout.readline()  # written after the first run's commit
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    process.stdout.close()
    assert first_line == f"track-record binance: 1/{total} runs\n" and process.returncode == -signal.SIGKILL
    interrupted = {score.run_id for score in deployment.scores()}
    assert 1 <= len(interrupted) < total, "the kill should land mid-way"
    summary = _backfill(capsys, "--exchange", "binance")[-1]
    assert summary.startswith(f"track-record binance: {total - len(interrupted)} runs scored")
    assert deployment.rows(with_scored_at=False) == reference
