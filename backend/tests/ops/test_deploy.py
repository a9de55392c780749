"""deployment/deploy.sh into a temporary root: install, idempotent re-run, upgrade, rollback, dry run.

The script runs for real (copying releases, migrating a SQLite database, starting the release's API for the
health check); only systemd is absent, which ``--prefix`` accounts for.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import DEPLOYMENT_DIR
from tests.support.services import unavailable
from tests.support.source_tree import copy_source_tree

DEPLOY = DEPLOYMENT_DIR / "deploy.sh"
VENV = Path(sys.executable).parent.parent


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A private copy of the source tree that a test may change."""
    return copy_source_tree(tmp_path / "src")


def _prefix(tmp_path: Path, *, with_env_file: bool = True) -> Path:
    prefix = tmp_path / "root"
    if with_env_file:
        (prefix / "etc" / "dantaro").mkdir(parents=True)
        url = f"sqlite:///{prefix}/var/lib/dantaro/dantaro.sqlite3"
        (prefix / "etc" / "dantaro" / "dantaro.env").write_text(
            f"DANTARO_ENV=development\nDANTARO_DATABASE_URL={url}\n"
        )
    return prefix


def _deploy(source: Path, prefix: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANTARO_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # bytecode only from deploy.sh's own steps, as under the service user
    args = ["bash", str(source / "deployment" / "deploy.sh"), "--prefix", str(prefix), "--source", str(source)]
    args += ["--venv", str(VENV), "--health-timeout-s", "30", *extra]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)


def _live(prefix: Path) -> str:
    return os.readlink(prefix / "opt" / "dantaro-central" / "current")


def _without_current_bytecode(package: Path) -> list[str]:
    """The modules under ``package`` whose bytecode is missing or stale (its header against the source, PEP 552)."""
    stale = []
    for source in package.rglob("*.py"):
        cached = Path(importlib.util.cache_from_source(str(source)))
        header = cached.read_bytes()[:16] if cached.exists() else b""
        flags = int.from_bytes(header[4:8], "little")
        if flags & 1:  # hash-based (SOURCE_DATE_EPOCH set): the source's hash
            current = header[8:16] == importlib.util.source_hash(source.read_bytes())
        else:  # timestamp-based: the source's mtime and size
            stat_ = source.stat()
            stamp = (int(stat_.st_mtime) & 0xFFFFFFFF, stat_.st_size & 0xFFFFFFFF)
            current = header[8:16] == b"".join(value.to_bytes(4, "little") for value in stamp)
        if header[:4] != importlib.util.MAGIC_NUMBER or not current:
            stale.append(str(source.relative_to(package)))
    return stale


def test_install_then_rerun_is_idempotent(source: Path, tmp_path: Path) -> None:
    prefix = _prefix(tmp_path)
    first = _deploy(source, prefix)
    assert first.returncode == 0, first.stdout + first.stderr
    live = _live(prefix)
    release = prefix / "opt" / "dantaro-central" / live
    for unit in (release / "deployment" / "systemd").glob("*.service"):  # what the units start exists and runs
        exec_start = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart="))
        command = exec_start.removeprefix("ExecStart=").split()[0].replace("/opt/dantaro-central/current", str(release))
        assert subprocess.run([command, "--help"], capture_output=True, check=False).returncode == 0
    assert (prefix / "var" / "lib" / "dantaro" / "dantaro.sqlite3").exists()  # migrated
    assert not _without_current_bytecode(release / "backend" / "app")  # no start of the service user compiles
    second = _deploy(source, prefix)
    assert second.returncode == 0
    assert "nothing to do" in second.stdout
    assert _live(prefix) == live


def test_upgrade_then_failed_health_check_rolls_back(source: Path, tmp_path: Path) -> None:
    prefix = _prefix(tmp_path)
    assert _deploy(source, prefix).returncode == 0
    (source / "docs" / "upgrade-note.md").write_text("a change that makes a new release\n")
    upgrade = _deploy(source, prefix)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    good = _live(prefix)
    app_file = source / "backend" / "app" / "api" / "app.py"
    app_file.write_text(app_file.read_text() + "\nraise RuntimeError('broken release')\n")
    broken = _deploy(source, prefix)
    assert broken.returncode == 1
    assert "rolling back" in broken.stderr
    assert _live(prefix) == good
    releases = sorted(p.name for p in (prefix / "opt" / "dantaro-central" / "releases").iterdir())
    assert len(releases) == 3  # the broken release stays on disk for inspection


def test_env_file_is_created_from_the_template_only_if_absent(source: Path, tmp_path: Path) -> None:
    prefix = _prefix(tmp_path, with_env_file=False)
    result = _deploy(source, prefix)
    env_file = prefix / "etc" / "dantaro" / "dantaro.env"
    assert env_file.read_text() == (source / "deployment" / ".env.production").read_text()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    # The template points at a PostgreSQL password placeholder: the deploy stops before going live.
    assert result.returncode != 0
    assert not (prefix / "opt" / "dantaro-central" / "current").exists()
    env_file.write_text("DANTARO_ENV=development\n# edited by the operator\n")
    _deploy(source, prefix)
    assert "edited by the operator" in env_file.read_text()


def test_dry_run_changes_nothing(source: Path, tmp_path: Path) -> None:
    prefix = _prefix(tmp_path)
    result = _deploy(source, prefix, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would run:" in result.stdout
    assert not (prefix / "opt").exists()


def test_unknown_option_is_one_readable_line(source: Path, tmp_path: Path) -> None:
    result = _deploy(source, _prefix(tmp_path), "--colour")
    assert result.returncode == 2
    assert result.stderr.strip() == "deploy: unknown option --colour (see --help)"


def test_release_files_are_owned_by_root_and_not_group_or_world_writable(source: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:  # CI and production deploy as root
        unavailable("ownership is only changed when deploy.sh runs as root")
    for path in [source, *source.rglob("*")]:  # a source tree checked out by someone else, group/world-writable
        os.chown(path, 1234, 1234, follow_symlinks=False)
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWGRP | stat.S_IWOTH)
    prefix = _prefix(tmp_path)
    result = _deploy(source, prefix)
    assert result.returncode == 0, result.stdout + result.stderr
    release = prefix / "opt" / "dantaro-central" / _live(prefix)
    offenders = [
        str(path.relative_to(release))
        for path in [release, *release.rglob("*")]
        if not path.is_symlink()
        and (path.stat().st_uid != 0 or path.stat().st_gid != 0 or path.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH))
    ]
    assert not offenders, offenders[:10]
