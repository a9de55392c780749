"""Alembic migrations on SQLite and PostgreSQL: upgrade, current, check (drift and pending), downgrade, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from app.storage import migrate
from app.storage.db import make_engine
from app.storage.models import Base
from tests.support.paths import REPO_ROOT


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_check_downgrade_cycle(empty_database_url: str) -> None:
    url = empty_database_url
    assert migrate.current(url) is None
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head() == "0002"
    assert _tables(url) == set(Base.metadata.tables)
    migrate.check(url)
    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    assert _tables(url) == set()
    migrate.upgrade(url, "head")
    migrate.check(url)


def test_check_rejects_a_database_behind_head(empty_database_url: str) -> None:
    with pytest.raises(migrate.MigrationError, match="not head"):
        migrate.check(empty_database_url)


def test_check_rejects_drift_from_the_models(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE api_keys ADD COLUMN owner_email VARCHAR(200)"))
    finally:
        engine.dispose()
    with pytest.raises(migrate.MigrationError, match="owner_email"):
        migrate.check(empty_database_url)


def _cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DANTARO_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "migrate.py"), *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_upgrade_current_check_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli' / 'dantaro.sqlite3'}"
    assert _cli("current", url=url).stdout.strip() == "none (not migrated)"
    upgraded = _cli("upgrade", url=url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded to 0002" in upgraded.stdout
    assert _cli("current", url=url).stdout.strip() == "0002"
    assert _cli("check", url=url).returncode == 0
    downgraded = _cli("downgrade", "base", url=url)
    assert downgraded.returncode == 0 and "downgraded to base" in downgraded.stdout


def test_cli_reports_one_line_and_fails(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli' / 'dantaro.sqlite3'}"
    missing_revision = _cli("downgrade", url=url)
    assert missing_revision.returncode == 1
    assert missing_revision.stderr.strip().count("\n") == 0
    assert "needs a REVISION" in missing_revision.stderr
    pending = _cli("check", url=url)
    assert pending.returncode == 1 and "run upgrade" in pending.stderr
