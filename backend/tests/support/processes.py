"""``dantaro`` as real subprocesses: their environment, one-shot runs, long-running processes and the API server.

Logs go to a file, never a full pipe; every process is killed by its test. Times are seconds (``*_s``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2

from tests.support.network import free_port
from tests.support.paths import BACKEND_DIR, REPO_ROOT

DANTARO = [sys.executable, "-m", "app.cli"]  # the ``dantaro`` command of this interpreter


def log_events(text: str) -> list[dict[str, Any]]:
    """The JSON log events in a process's stderr (lines that are not JSON objects are skipped)."""
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def dantaro_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a ``dantaro`` subprocess: no inherited DANTARO_* variables, JSON logs, small replay, one
    API process (``dantaro api`` without a supervisor; tests of several pass ``--workers``)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DANTARO_")}
    env.update(
        DANTARO_DATA_DIR=str(data_dir),
        DANTARO_API_WORKERS="1",
        DANTARO_REPLAY_WARMUP_CANDLES="100",
        DANTARO_LOOKBACK_CANDLES="150",
        DANTARO_LOG_FORMAT="json",
        PYTHONPATH=str(BACKEND_DIR),
    )
    env.update(settings)
    return env


def run_dantaro(args: list[str], env: dict[str, str], *, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m app.cli ARGS`` to completion (raises ``TimeoutExpired`` after ``timeout_s``)."""
    return subprocess.run(
        [*DANTARO, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def create_api_key(env: dict[str, str], *, name: str, rate_limit: str = "100000/min") -> str:
    """Create a key with ``dantaro keys create`` and return the secret it printed."""
    result = run_dantaro(["keys", "create", "--name", name, "--rate-limit", rate_limit], env)
    if result.returncode != 0:
        raise RuntimeError(f"dantaro keys create failed: {result.stderr.strip()}")
    return printed_secret(result.stdout)


def printed_secret(stdout: str) -> str:
    """The key secret in what ``dantaro keys create`` printed (the line after ``secret``)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    marker = next(i for i, line in enumerate(lines) if line.startswith("secret"))
    return lines[marker + 1]


class DantaroProcess:
    """A long-running ``python -m app.cli ARGS`` whose stderr (the JSON log) goes to a file, never a full pipe."""

    def __init__(self, args: list[str], env: dict[str, str], *, log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.wrapper: list[str] = []  # a command the process is started under, e.g. ``prlimit --nofile=64:64 --``
        self.program: list[str] = DANTARO  # or a release's ``bin/dantaro`` (deploy tests)

    def start(self) -> DantaroProcess:
        """Start the process (returns self)."""
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [*self.wrapper, *self.program, *self.args],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        return self

    @property
    def alive(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        """Everything the process logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, signum: signal.Signals = signal.SIGKILL) -> None:
        """Send ``signum`` (default SIGKILL) and wait for the exit; a no-op when not running."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class ApiServer(DantaroProcess):
    """``dantaro api --port P`` (or ``command="run"``: API and worker) as a subprocess; ``base_url`` once started."""

    def __init__(self, env: dict[str, str], *, log_path: Path, port: int | None = None, command: str = "api") -> None:
        self.port = port or free_port()
        super().__init__([command, "--host", "127.0.0.1", "--port", str(self.port)], env, log_path=log_path)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 20.0) -> ApiServer:
        """Start the API and wait until ``/health`` answers 200."""
        super().start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"the API exited at startup:\n{self.log_text()[-3000:]}")
            try:
                if httpx2.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the API did not answer /health within {timeout_s} s:\n{self.log_text()[-3000:]}")
