"""Dantaro Central installed by ``deployment/deploy.sh`` in a booted Debian machine, run by its systemd units.

``systemd_stack`` boots a ``tests.support.nspawn`` machine with this checkout bound read-only at ``/src``, the
wheelhouse of the pinned requirements at ``/wheelhouse`` (pip installs from it only: ``PIP_NO_INDEX``) and a folder
for other releases at ``/releases``, then installs as the runbook does: a first ``deploy.sh`` creates the env file
from the template and stops at its placeholder, the settings are edited (a throwaway PostgreSQL database and Redis key
prefix on the host, the bundled replay, free ports) and ``deploy.sh`` runs again. Helpers for later tests: ``run``
inside, ``api_url``, ``deploy`` (or ``deploy_command`` to run one in the background while a load runs), ``release``.
Invariant: the machine is powered off and its Redis keys deleted when the block ends.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import redis

from tests.support.debian_root import prepare
from tests.support.network import free_port
from tests.support.nspawn import Machine, booted_machine, require_nspawn
from tests.support.paths import REPO_ROOT
from tests.support.processes import printed_secret
from tests.support.queries import query
from tests.support.services import delete_keys
from tests.support.waiting import wait_for

ENV_FILE = "/etc/dantaro/dantaro.env"
CURRENT = "/opt/dantaro-central/current"
RELEASES = "/opt/dantaro-central/releases"
RUN_TABLES = ("recommendations", "support_levels", "market_status")
UNITS = ("dantaro-migrate.service", "dantaro-api.service", "dantaro-worker.service")
PIP_OFFLINE = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/wheelhouse", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
RUN_TIMEOUT_S = 60.0  # a published run after a (re)start: the replay's first cycle takes a few seconds


@dataclass
class SystemdStack:
    """The deployment in ``machine`` and the host-side services it uses."""

    machine: Machine
    database_url: str  # the throwaway database, as the host reaches it (the machine shares the host's network)
    redis_url: str
    redis_prefix: str
    api_port: int
    metrics_port: int
    releases_dir: Path  # the host folder bound read-only at /releases

    @property
    def api_url(self) -> str:
        """The API's base URL, from the host or from inside."""
        return f"http://127.0.0.1:{self.api_port}"

    def ready(self) -> bool:
        """Whether the API answers ``/health/ready`` with 200."""
        try:
            return httpx2.get(f"{self.api_url}/health/ready", timeout=2.0).status_code == 200
        except httpx2.HTTPError:
            return False

    def wait_ready(self, *, timeout_s: float = RUN_TIMEOUT_S) -> None:
        """Wait until the API answers ``/health/ready`` with 200."""
        wait_for(self.ready, timeout_s=timeout_s, what="/health/ready to answer 200", poll_s=0.2)

    def run(self, *args: str, check: bool = True, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside the machine as root."""
        return self.machine.run(list(args), check=check, timeout_s=timeout_s)

    def deploy_command(self, source: str = "/src", *args: str) -> list[str]:
        """The host command running ``SOURCE/deployment/deploy.sh ARGS`` inside, as an operator would."""
        return self.machine.command([f"{source}/deployment/deploy.sh", *args], env=PIP_OFFLINE)

    def deploy(self, source: str = "/src", *args: str, timeout_s: float = 600.0) -> subprocess.CompletedProcess[str]:
        """Run ``deploy.sh`` of the release at ``source`` (inside) to completion."""
        command = self.deploy_command(source, *args)
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)

    def configure(self, settings: Mapping[str, str]) -> None:
        """Set ``settings`` in the env file, as an operator edits it (other lines, owner and mode stay)."""
        pending = dict(settings)
        lines = []
        for line in self.machine.path(ENV_FILE).read_text().splitlines():
            name = line.split("=", 1)[0]
            lines.append(f"{name}={pending.pop(name)}" if name in pending and not line.startswith("#") else line)
        lines += [f"{name}={value}" for name, value in pending.items()]
        self.machine.write_file(ENV_FILE, "\n".join(lines) + "\n")

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """``systemctl show`` properties of ``unit``."""
        output = self.run("systemctl", "show", unit, *(f"--property={name}" for name in properties)).stdout
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    def release(self, unit: str) -> str:
        """The release folder the unit's main process runs in (its working directory, ``current`` resolved)."""
        pid = self.show(unit, "MainPID")["MainPID"]
        assert pid != "0", f"{unit} has no main process"
        return Path(self.run("readlink", f"/proc/{pid}/cwd").stdout.strip()).name

    def live_release(self) -> str:
        """The release ``current`` points at."""
        return Path(self.run("readlink", CURRENT).stdout.strip()).name

    def journal(self, unit: str, *, since_cursor: str = "") -> list[dict[str, Any]]:
        """The journal entries of ``unit`` (``journalctl -u UNIT -o json``), after ``since_cursor`` when given."""
        args = ["journalctl", "-u", unit, "-o", "json", "--no-pager"]
        output = self.run(*args, *([f"--after-cursor={since_cursor}"] if since_cursor else [])).stdout
        return [json.loads(line) for line in output.splitlines() if line.strip()]

    def runs(self) -> dict[str, tuple[str, bool, int]]:
        """run_id → (status, published, symbols_ok) of every analysis run in the database."""
        sql = "SELECT run_id, status, published_at IS NOT NULL, symbols_ok FROM analysis_runs"
        rows = query(self.database_url, sql)
        return {str(run_id): (str(status), bool(published), int(str(ok))) for run_id, status, published, ok in rows}

    def rows_of(self, run_id: str) -> dict[str, int]:
        """How many rows of each published table belong to ``run_id``."""
        counts = {}
        for table in RUN_TABLES:
            rows = query(self.database_url, f"SELECT COUNT(*) FROM {table} WHERE run_id = '{run_id}'")
            counts[table] = int(str(rows[0][0]))
        return counts

    def wait_for_new_run(self, known: set[str], *, timeout_s: float = RUN_TIMEOUT_S) -> str:
        """The id of a run published that is not in ``known`` (waits for one)."""
        fresh: list[str] = []

        def published() -> bool:
            fresh[:] = [run_id for run_id, (_, done, _) in self.runs().items() if done and run_id not in known]
            return bool(fresh)

        wait_for(published, timeout_s=timeout_s, what="a newly published run", poll_s=0.2)
        return fresh[0]

    def create_key(self, name: str, *, rate_limit: str = "600/min") -> str:
        """``dantaro keys create`` as the runbook says (``sudo -u dantaro env DANTARO_ENV_FILE=...``)."""
        command = ["sudo", "-u", "dantaro", "env", f"DANTARO_ENV_FILE={ENV_FILE}", f"{CURRENT}/bin/dantaro"]
        return printed_secret(self.run(*command, "keys", "create", "--name", name, "--rate-limit", rate_limit).stdout)


def timespan_s(text: str) -> float:
    """Seconds of a systemd time span as ``systemctl show`` prints it (``5s``, ``1min 30s``, ``100ms``)."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|min|s|h)", text)
    if not parts or "".join(number + unit for number, unit in parts) != text.replace(" ", ""):
        raise ValueError(f"not a systemd time span: {text!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


def stack_settings(
    database_url: str, redis_url: str, prefix: str, *, api_port: int, metrics_port: int
) -> dict[str, str]:
    """What the tests put in the env file: the host's services, the bundled replay (no network), small and fast."""
    return {
        "DANTARO_DATABASE_URL": database_url,
        "DANTARO_REDIS_URL": redis_url,
        "DANTARO_REDIS_PREFIX": prefix,
        "DANTARO_MARKET_SOURCE": "replay",
        "DANTARO_EXCHANGES": "binance",
        "DANTARO_UNIVERSE_SIZE": "5",
        "DANTARO_ANALYSIS_INTERVAL_S": "5",
        "DANTARO_REPLAY_WARMUP_CANDLES": "100",
        "DANTARO_LOOKBACK_CANDLES": "150",
        "DANTARO_API_PORT": str(api_port),
        "DANTARO_WORKER_METRICS_PORT": str(metrics_port),
    }


def _install(stack: SystemdStack) -> None:
    """Install as the runbook says: deploy (creates the env file, stops), edit the settings, deploy again."""
    first = stack.deploy()
    assert first.returncode == 2, first.stdout + first.stderr
    assert "CHANGE_ME" in first.stderr, first.stderr
    settings = stack_settings(
        stack.database_url,
        stack.redis_url,
        stack.redis_prefix,
        api_port=stack.api_port,
        metrics_port=stack.metrics_port,
    )
    stack.configure(settings)
    second = stack.deploy()
    assert second.returncode == 0, second.stdout + second.stderr


@contextmanager
def systemd_stack(workdir: Path, *, database_url: str, redis_url: str) -> Iterator[SystemdStack]:
    """A booted machine with Dantaro Central deployed and running (see the module docstring)."""
    require_nspawn()
    root, wheelhouse = prepare(REPO_ROOT / "requirements.txt")
    releases = workdir / "releases"
    releases.mkdir()
    binds = {REPO_ROOT: "/src", wheelhouse: "/wheelhouse", releases: "/releases"}
    prefix = f"dantaro_test_{secrets.token_hex(6)}"
    name = f"dantaro-{secrets.token_hex(4)}"
    try:
        with booted_machine(root, workdir, name=name, binds=binds) as machine:
            stack = SystemdStack(machine, database_url, redis_url, prefix, free_port(), free_port(), releases)
            _install(stack)
            yield stack
    finally:
        client = redis.Redis.from_url(redis_url)
        try:
            delete_keys(client, prefix)
        finally:
            client.close()
