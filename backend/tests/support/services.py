"""The services tests need: the rule for an unavailable one, and private PostgreSQL and Redis servers.

``unavailable`` is the one rule for every service, tool and server binary a test needs: it skips the test, or
fails it under ``DANTARO_REQUIRE_SERVICES=1`` (as CI sets), so nothing is silently skipped in CI.

Private servers run on their own ports for tests that stop, kill and restart them; the shared services on
5432/6379 are never touched by fault tests. A private PostgreSQL cluster is created with ``initdb`` under a
temporary directory (owned by the ``postgres`` user when the tests run as root, because the server refuses to
run as root); a private Redis is a ``redis-server`` without persistence.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import NoReturn

import pytest
import redis

from tests.support.network import free_port, wait_for_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when ``DANTARO_REQUIRE_SERVICES=1`` (as CI sets): one rule for every service."""
    if os.environ.get("DANTARO_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def delete_keys(client: redis.Redis, prefix: str) -> None:
    """Delete every key under ``prefix:`` (a test's throwaway key prefix)."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
    if keys:
        client.delete(*keys)


def require_executable(name: str, *, install_hint: str) -> str:
    """The path of ``name`` on PATH, else skip/fail saying how to install it."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed ({install_hint})")
    return path


def require_redis_server() -> None:
    """A private Redis can be started here (``redis-server`` on PATH), else skip/fail."""
    require_executable("redis-server", install_hint="apt-get install redis-server")


def require_postgres_binaries() -> None:
    """A private PostgreSQL cluster can be created here (``initdb``/``pg_ctl`` in ``PG_BIN``), else skip/fail."""
    missing = [name for name in ("initdb", "pg_ctl", "createdb") if not (PG_BIN / name).exists()]
    if missing:
        unavailable(f"PostgreSQL 15 binaries missing in {PG_BIN}: {', '.join(missing)} (apt-get install postgresql-15)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("running as root needs runuser to start PostgreSQL as the postgres user")


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
