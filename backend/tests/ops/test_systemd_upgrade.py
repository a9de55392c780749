"""deploy.sh upgrades and rolls back under a real systemd (Debian 12 booted with systemd-nspawn).

The ``deployed`` fixture installs this checkout (``/src``); the tests then deploy a second release and a deliberately
broken one, both copies of this checkout under the folder bound at ``/releases``, with deploy.sh's default health
check. Which release a service runs is read from its main process's working directory (``current`` resolved at
start; the API's supervisor moves into the release its processes run after each reload), so a service still running
the previous release is caught. Both deploys run under load (wrk, or the Python load generator, from the host on a
data endpoint with a real key): the API is reloaded, not restarted (the same supervisor, no systemd restart), and
not one request fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from benchmarks.load_generators import Endpoint, background_load
from tests.support.source_tree import copy_source_tree
from tests.support.systemd_stack import RELEASES, SystemdStack

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SERVICES = ("dantaro-api.service", "dantaro-worker.service")
API = "dantaro-api.service"
LOADED = Endpoint("market-status", "GET", "/api/v1/market-status")


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


@contextmanager
def _no_request_lost(deployed: SystemdStack) -> Iterator[None]:
    """Load the API during the block; afterwards every request succeeded and the API's unit was never restarted."""
    before = deployed.show(API, "MainPID", "NRestarts")
    headers = {"Authorization": f"Bearer {deployed.create_key('load', rate_limit='100000000/min')}"}
    port = int(deployed.api_url.rsplit(":", 1)[1])
    with background_load(LOADED, port=port, headers=headers, connections=8) as results:
        yield
    (load,) = results
    assert load.requests > 100 and load.errors == 0, load  # no non-2xx answer, no socket error
    assert deployed.show(API, "MainPID", "NRestarts") == before  # reloaded by the same supervisor


def test_upgrade_to_a_second_release_restarts_the_worker_and_reloads_the_api_in_it(deployed: SystemdStack) -> None:
    first = deployed.live_release()
    source = copy_source_tree(deployed.releases_dir / "second")
    (source / "docs" / "upgrade-note.md").write_text("a change that makes a new release\n")
    known = set(deployed.runs())
    with _no_request_lost(deployed):
        result = deployed.deploy("/releases/second")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "api-reload: reloaded in" in result.stdout
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
    with _no_request_lost(deployed):
        result = deployed.deploy("/releases/broken")  # its API processes never start: the reload fails
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"rolling back to {good}" in result.stderr, result.stdout + result.stderr
    assert "the new process exited with status 1 before it was ready" in result.stderr
    _serving(deployed, good)
    broken = _deployed(result.stdout)
    assert broken != good
    assert deployed.run("test", "-d", f"{RELEASES}/{broken}", check=False).returncode == 0  # kept for inspection
    known = set(deployed.runs())
    assert deployed.wait_for_new_run(known)  # the worker runs the good release again and publishes
