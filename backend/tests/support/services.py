"""Private PostgreSQL and Redis servers on their own ports, for tests that stop, kill and restart them.

The shared services on 5432/6379 are never touched by fault tests. A private PostgreSQL cluster is created with
``initdb`` under a temporary directory (owned by the ``postgres`` user when the tests run as root, because the
server refuses to run as root); a private Redis is a ``redis-server`` without persistence.

Also here: ``unavailable`` / ``require_*`` (a missing server binary skips, or fails under
``DANTARO_REQUIRE_SERVICES=1``), ``dantaro`` subprocesses (``run_dantaro``, ``DantaroProcess``, ``ApiServer``: logs
go to a file, every process is killed by its test), an HTTP ``Load`` of client threads recording each ``Reply``'s
provenance fields, and readers of the stored hourly candles. Times are monotonic seconds (``*_s``), candle open
times epoch milliseconds.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from sqlalchemy import text

from app.storage.db import make_engine

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout_s: float = 20.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


class PrivateRedis:
    """A redis-server on its own port that a test can kill and start again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def kill(self) -> None:
        """SIGKILL the server (no shutdown handshake, like a crash)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


class PrivatePostgres:
    """A throwaway PostgreSQL 15 cluster on its own port; ``stop``/``start`` keep its data, ``destroy`` removes it.

    Without ``root`` the cluster lives in a fresh directory under the system temp dir that the ``postgres`` user
    can reach (pytest's ``tmp_path`` is private to root, so the server could not read its data there).
    """

    def __init__(self, root: Path | None = None, port: int | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="dantaro-pg-"))
        self.port = port or free_port()
        self.data_dir = self.root / "pgdata"
        self._as_postgres = os.geteuid() == 0
        self.running = False

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``dantaro`` database in this cluster."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/dantaro"

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")

    def init(self) -> None:
        """Create the cluster and the ``dantaro`` database, and start it."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            self.root.chmod(0o700)
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self._run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "dantaro")

    def start(self) -> None:
        """Start the server on its port and wait for it."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-o",
            options,
            "-w",
            "-l",
            str(self.root / "server.log"),
            "start",
        )
        wait_for_port(self.port)
        self.running = True

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server (``fast`` disconnects clients; ``immediate`` is a crash)."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")
        self.running = False

    def destroy(self) -> None:
        """Stop the server if it runs and delete the cluster's directory."""
        try:
            if self.running:
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# --- Availability: skip, or fail under DANTARO_REQUIRE_SERVICES=1 ---------------------------------------------


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when ``DANTARO_REQUIRE_SERVICES=1`` (as CI sets): one rule for every service."""
    if os.environ.get("DANTARO_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def require_redis_server() -> None:
    """A private Redis can be started here (``redis-server`` on PATH), else skip/fail."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")


def require_postgres_binaries() -> None:
    """A private PostgreSQL cluster can be created here (``initdb``/``pg_ctl`` in ``PG_BIN``), else skip/fail."""
    missing = [name for name in ("initdb", "pg_ctl", "createdb") if not (PG_BIN / name).exists()]
    if missing:
        unavailable(f"PostgreSQL 15 binaries missing in {PG_BIN}: {', '.join(missing)} (apt-get install postgresql-15)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("running as root needs runuser to start PostgreSQL as the postgres user")


# --- Dantaro processes ----------------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[3]


def copy_replay_pairs(root: Path, bases: Sequence[str]) -> Path:
    """A replay folder under ``root`` with the bundled 1h and 1d files of a few real USDT pairs (quicker cycles)."""
    from app.config import BUNDLED_DATA_DIR

    for timeframe in ("1h", "1d"):
        (root / timeframe).mkdir(parents=True, exist_ok=True)
        for base in bases:
            name = f"{base}_USDT-{timeframe}.json.gz"
            shutil.copy(BUNDLED_DATA_DIR / timeframe / name, root / timeframe / name)
    return root


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
    """The environment of a ``dantaro`` subprocess: no inherited DANTARO_* variables, JSON logs, small replay."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DANTARO_")}
    env.update(
        DANTARO_DATA_DIR=str(data_dir),
        DANTARO_REPLAY_WARMUP_CANDLES="100",
        DANTARO_LOOKBACK_CANDLES="150",
        DANTARO_LOG_FORMAT="json",
        PYTHONPATH=str(REPO_ROOT / "backend"),
    )
    env.update(settings)
    return env


def run_dantaro(args: list[str], env: dict[str, str], *, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m app.cli ARGS`` to completion (raises ``TimeoutExpired`` after ``timeout_s``)."""
    command = [sys.executable, "-m", "app.cli", *args]
    return subprocess.run(
        command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def create_api_key(env: dict[str, str], *, name: str, rate_limit: str = "100000/min") -> str:
    """Create a key with ``dantaro keys create`` and return the secret it printed."""
    result = run_dantaro(["keys", "create", "--name", name, "--rate-limit", rate_limit], env)
    if result.returncode != 0:
        raise RuntimeError(f"dantaro keys create failed: {result.stderr.strip()}")
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    marker = next(i for i, line in enumerate(lines) if line.startswith("secret"))
    return lines[marker + 1]


class DantaroProcess:
    """A long-running ``python -m app.cli ARGS`` whose stderr (the JSON log) goes to a file, never a full pipe."""

    def __init__(self, args: list[str], env: dict[str, str], *, log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DantaroProcess:
        """Start the process (returns self)."""
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *self.args],
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
    """``dantaro api --port P`` as a subprocess; ``base_url`` once ``start`` returned."""

    def __init__(self, env: dict[str, str], *, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        super().__init__(["api", "--host", "127.0.0.1", "--port", str(self.port)], env, log_path=log_path)

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
                if httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the API did not answer /health within {timeout_s} s:\n{self.log_text()[-3000:]}")


# --- HTTP load ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer (or transport failure: ``status`` 0 and ``error``) seen by the load, at monotonic ``at_s``."""

    at_s: float
    path: str
    status: int
    data_source: str | None = None
    run_id: str | None = None
    stale: bool | None = None
    error: str | None = None
    cache_status: str | None = None  # market-status only: system_health.cache_status
    age_s: float | None = None  # age_seconds: how old the served run is
    latency_s: float = 0.0


def fetch(client: httpx.Client, path: str) -> Reply:
    """GET ``path`` and record the provenance fields of the body (transport errors become status 0)."""
    at_s = time.monotonic()
    try:
        response = client.get(path)
    except httpx.HTTPError as exc:
        return Reply(at_s, path, 0, error=f"{type(exc).__name__}: {exc}")
    try:
        body = response.json()
    except ValueError:
        return Reply(at_s, path, response.status_code, error=response.text[:200])
    if not isinstance(body, dict):
        return Reply(at_s, path, response.status_code, error=str(body)[:200])
    error = None if response.status_code == 200 else str(body)[:300]
    health = body.get("system_health")
    cache_status = health.get("cache_status") if isinstance(health, dict) else None
    return Reply(
        at_s,
        path,
        response.status_code,
        body.get("data_source"),
        body.get("run_id"),
        body.get("stale"),
        error,
        cache_status,
        body.get("age_seconds"),
        time.monotonic() - at_s,
    )


class Load:
    """``threads`` clients requesting ``paths`` round-robin against ``base_url`` until ``stop()``."""

    def __init__(self, base_url: str, *, paths: list[str], headers: dict[str, str], threads: int = 4) -> None:
        self._base_url = base_url
        self._paths = paths
        self._headers = headers
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.replies: list[Reply] = []
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self._base_url, headers=self._headers, timeout=5.0) as client:
            turn = offset
            while not self._stop.is_set():
                reply = fetch(client, self._paths[turn % len(self._paths)])
                with self._lock:
                    self.replies.append(reply)
                turn += 1


# --- Stored candles -------------------------------------------------------------------------------------------


def hourly_open_times(database_url: str) -> dict[str, list[int]]:
    """Symbol → open times (ms, ascending, duplicates kept) of every stored 1h candle."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT symbol, open_time_ms FROM candles WHERE timeframe = '1h' ORDER BY symbol, open_time_ms")
            )
            by_symbol: dict[str, list[int]] = {}
            for symbol, open_ms in rows:
                by_symbol.setdefault(str(symbol), []).append(int(open_ms))
            return by_symbol
    finally:
        engine.dispose()


def open_time_steps(open_times: list[int]) -> set[int]:
    """The distinct differences between consecutive open times ({3_600_000} for a whole hourly series)."""
    return {later - earlier for earlier, later in itertools.pairwise(open_times)}
