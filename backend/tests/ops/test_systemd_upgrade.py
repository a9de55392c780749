"""deploy.sh upgrades and rolls back under a real systemd (Debian 12 booted with systemd-nspawn).

The ``deployed`` fixture installs this checkout (``/src``); the tests then deploy a second release and a deliberately
broken one, both copies of this checkout under the folder bound at ``/releases``, with deploy.sh's default health
check. Which release a service runs is read from its main process's working directory (``current`` resolved at
start), so a service still running the previous release is caught.
"""

from __future__ import annotations

import pytest

from tests.support.source_tree import copy_source_tree
from tests.support.systemd_stack import RELEASES, SystemdStack

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SERVICES = ("dantaro-api.service", "dantaro-worker.service")


def _deployed(stdout: str) -> str:
    """The release id of ``deploy: deploying ID into ...``."""
    return stdout.split("deploying ", 1)[1].split(maxsplit=1)[0]


def _serving(deployed: SystemdStack, release: str) -> None:
    """Both services are active in ``release`` (the live one) and the API is ready."""
    deployed.wait_ready()
    assert deployed.live_release() == release
    for unit in SERVICES:
        assert deployed.show(unit, "ActiveState")["ActiveState"] == "active", unit
        assert deployed.release(unit) == release, unit


def test_upgrade_to_a_second_release_restarts_both_services_in_it(deployed: SystemdStack) -> None:
    first = deployed.live_release()
    source = copy_source_tree(deployed.releases_dir / "second")
    (source / "docs" / "upgrade-note.md").write_text("a change that makes a new release\n")
    known = set(deployed.runs())
    result = deployed.deploy("/releases/second")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reusing virtualenv" in result.stdout  # requirements.txt unchanged
    second = _deployed(result.stdout)
    assert f"release {second} is live" in result.stdout and second != first
    _serving(deployed, second)
    assert deployed.wait_for_new_run(known)  # published by the upgraded worker
    assert deployed.run("test", "-d", f"{RELEASES}/{first}", check=False).returncode == 0  # kept for a rollback


def test_broken_release_is_rolled_back_and_the_previous_one_serves(deployed: SystemdStack) -> None:
    good = deployed.live_release()
    source = copy_source_tree(deployed.releases_dir / "broken")
    app_file = source / "backend" / "app" / "api" / "app.py"
    app_file.write_text(app_file.read_text() + "\nraise RuntimeError('broken release')\n")
    result = deployed.deploy("/releases/broken")  # the default health check: 60 s on /health/ready
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"rolling back to {good}" in result.stderr, result.stdout + result.stderr
    _serving(deployed, good)
    broken = _deployed(result.stdout)
    assert broken != good
    assert deployed.run("test", "-d", f"{RELEASES}/{broken}", check=False).returncode == 0  # kept for inspection
    known = set(deployed.runs())
    assert deployed.wait_for_new_run(known)  # the worker runs the good release again and publishes
