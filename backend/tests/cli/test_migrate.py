"""``python migrate.py`` is the same command as ``dantaro migrate``: same default action, downgrade rule, output and
exit codes, checked by running both on twin databases (SQLite and PostgreSQL) and comparing every result."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.storage import migrate
from tests.support.paths import REPO_ROOT

# (arguments, expected exit status, a piece of the one line it prints); run in this order on each database.
STEPS: list[tuple[tuple[str, ...], int, str]] = [
    (("current",), 0, "none"),
    (("check",), 1, "run upgrade"),
    ((), 0, f"database at revision {migrate.head()}"),  # upgrade is the default action
    (("current",), 0, migrate.head()),
    (("check",), 0, "matches the models"),
    (("downgrade",), 2, "needs a REVISION"),
    (("downgrade", "-1"), 0, f"database at revision {int(migrate.head()) - 1:04d}"),  # the one before head
    (("upgrade", "no-such-revision"), 1, "no-such-revision"),
    (("upgrade", "head"), 0, f"database at revision {migrate.head()}"),
    (("sideways",), 2, "invalid choice"),
    (("downgrade", "base"), 0, "database at revision none"),
]


def _run(command: list[str], url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DANTARO_DATABASE_URL": url, "DANTARO_LOG_FORMAT": "json"}
    return subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def twin_databases(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database_factory: Callable[[], str]
) -> tuple[str, str]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shim.sqlite3'}", f"sqlite:///{tmp_path / 'dantaro.sqlite3'}"
    return postgres_database_factory(), postgres_database_factory()


def test_the_shim_behaves_exactly_like_dantaro_migrate(twin_databases: tuple[str, str]) -> None:
    shim_url, dantaro_url = twin_databases
    for arguments, status, text in STEPS:
        shim = _run([sys.executable, str(REPO_ROOT / "migrate.py"), *arguments], shim_url)
        dantaro = _run([sys.executable, "-m", "app.cli", "migrate", *arguments], dantaro_url)
        assert (shim.returncode, shim.stdout, shim.stderr) == (dantaro.returncode, dantaro.stdout, dantaro.stderr)
        assert shim.returncode == status, (arguments, shim.stderr)
        output = shim.stdout if status == 0 else shim.stderr
        assert text in output, (arguments, output)
        assert output.strip().count("\n") == 0, f"not one line: {output!r}"
