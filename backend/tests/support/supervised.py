"""``dantaro api --workers N`` as a subprocess, and connections pinned to one of its processes.

The supervisor's state file (``app.supervisor.state``) says which process serves which slot; a connection's server
side is found among a process's sockets (psutil), so a test can talk to a chosen process over a raw socket.
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import psutil

from app.supervisor.state import SupervisorState, read_state
from tests.support.processes import ApiServer
from tests.support.raw_http import RawResponse, head, read_response
from tests.support.waiting import wait_for


class SupervisedApi(ApiServer):
    """``dantaro api --workers N`` on a free port; ``start`` returns once every process said it is ready."""

    def __init__(self, env: dict[str, str], *, log_path: Path, workers: int) -> None:
        super().__init__(env, log_path=log_path)
        self.args += ["--workers", str(workers)]
        self.workers = workers
        self.data_dir = Path(env["DANTARO_DATA_DIR"])

    def start(self, *, timeout_s: float = 60.0) -> SupervisedApi:
        """Start the supervisor and wait until its state lists a ready process per slot."""
        super().start(timeout_s=timeout_s)
        wait_for(lambda: self.alive_processes() is not None, timeout_s=timeout_s, what="every API process to start")
        return self

    def state(self) -> SupervisorState:
        """The supervisor's state file (it must exist)."""
        state = read_state(self.data_dir)
        assert state is not None, self.log_text()[-3000:]
        return state

    def alive_processes(self) -> list[int] | None:
        """The pid serving each slot, when every slot has one that runs and said it is ready; else None."""
        state = read_state(self.data_dir)
        if state is None or self.process is None or state.pid != self.process.pid or not all(state.ready):
            return None
        pids = state.processes
        if len(pids) != self.workers or not all(pid is not None and psutil.pid_exists(pid) for pid in pids):
            return None
        return [pid for pid in pids if pid is not None]

    def stop(self, *, timeout_s: float = 30.0) -> int:
        """SIGTERM to the supervisor; its exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)


def _server_pid(port: int, client_port: int, candidates: list[int]) -> int | None:
    for pid in candidates:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        if any(c.raddr and c.raddr.port == client_port and c.laddr.port == port for c in connections):
            return pid
    return None


def connect_to(port: int, pid: int, *, candidates: list[int], attempts: int = 200) -> socket.socket:
    """A connection to ``port`` that process ``pid`` accepted (the kernel picks a slot per connection: retry)."""
    for _ in range(attempts):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        client_port = sock.getsockname()[1]
        owner = None
        deadline_s = time.monotonic() + 5
        while owner is None and time.monotonic() < deadline_s:  # accepted by some process a moment later
            owner = _server_pid(port, client_port, candidates)
            if owner is None:
                time.sleep(0.01)
        if owner == pid:
            return sock
        sock.close()
    raise AssertionError(f"no connection of {attempts} reached process {pid}")


def ask(sock: socket.socket, method: str, path: str, headers: dict[str, str] | None = None) -> RawResponse:
    """One request without a body on a kept-alive connection, and its response."""
    sock.sendall(head(method, path, headers or {}))
    return read_response(sock)
