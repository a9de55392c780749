"""The supervisor of ``dantaro api --workers N``: N API processes on one address, replaced when they die, reloaded
gracefully on SIGHUP, drained on SIGTERM/SIGINT.

Invariants:
- Each slot has one listening socket (``app.supervisor.sockets``), bound before the first process starts and open
  until the supervisor exits; a slot's process serves only that socket. So a connection is never refused while the
  supervisor runs: it waits in its slot's queue until a process accepts it.
- A process that exits on its own (a crash, a kill) is replaced on the same slot: at once when it had served for
  ``STEADY_S`` or for the first quick exit, else after a delay that doubles up to ``MAX_BACKOFF_S`` (a crash loop
  does not spin).
- A reload (SIGHUP, ``dantaro api-reload``) goes slot by slot: a new process is started (with ``launcher``, which
  runs the release ``current`` points to), and only once it says it is ready is the slot's old process asked to
  stop; a stopping process closes its copy of the socket, finishes its requests and closes its connections without
  a race (``app.http_limits``). When a new process exits or is not ready within ``ready_timeout_s`` the reload
  stops there, the remaining old processes keep serving and the outcome says why. At most N + 1 processes serve at
  once during a reload (memory: docs/operations.md), plus old ones still draining. Each process works in the folder
  of the release it runs, and after a reload the supervisor moves there too (what ``WorkingDirectory=`` resolved
  to at start: ``/proc/<pid>/cwd`` of the unit's main process names the release serving).
- A stop (SIGTERM, SIGINT) sends SIGTERM to every process and waits for them; one that has not exited
  ``drain_timeout_s`` after its SIGTERM is killed, in a stop or a reload alike.
- The first start fails (exit 1) when a process exits or is not ready within ``ready_timeout_s``.
- Metrics: each process spools its series into ``api-metrics/`` in the data directory, which the supervisor empties
  when it starts and removes when it stops (``app.prometheus``); an exited process's series are folded into the
  retired totals.
Times are monotonic seconds.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import structlog

from app.prometheus import retire_process
from app.supervisor.processes import Child, SignalPipe
from app.supervisor.sockets import bind_slots
from app.supervisor.state import ReloadOutcome, SupervisorState, lock_data_dir, remove_state, write_state

if TYPE_CHECKING:  # the supervisor's own process does not load the settings (app.supervisor.__main__)
    from app.config import Settings

log = structlog.get_logger(__name__)

LAUNCHER_ENV = "DANTARO_LAUNCHER"  # set by a release's bin/dantaro (deploy.sh): the path through `current`
STEP_S = 0.2
STEADY_S = 10.0
MAX_BACKOFF_S = 30.0
READY_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 25.0  # below the unit's TimeoutStopSec (30 s)
METRICS_DIR_NAME = "api-metrics"  # in the data directory: the processes' spooled series


def launcher() -> tuple[str, ...]:
    """The command that runs ``dantaro`` for a new process: ``$DANTARO_LAUNCHER``, else this interpreter."""
    path = os.environ.get(LAUNCHER_ENV)
    return (path,) if path else (sys.executable, "-m", "app.cli")


def release_dir(launcher: tuple[str, ...]) -> Path | None:
    """The release a launcher runs now (a release's ``bin/dantaro`` through ``current``, resolved), else None."""
    if len(launcher) != 1:
        return None
    folder = Path(os.path.realpath(launcher[0])).parent.parent
    return folder if folder.is_dir() else None


def restart_delay_s(quick_exits: int) -> float:
    """How long to wait before replacing a process, after ``quick_exits`` consecutive exits within ``STEADY_S`` of
    their start on the slot: none for the first, then 1 s doubling up to ``MAX_BACKOFF_S``."""
    return 0.0 if quick_exits <= 1 else min(MAX_BACKOFF_S, 2.0 ** (quick_exits - 2))


@dataclass(frozen=True, slots=True)
class Plan:
    """What to supervise: the address, the number of processes, where state lives and how processes start."""

    host: str
    port: int
    workers: int
    backlog: int
    data_dir: Path
    launcher: tuple[str, ...]
    ready_timeout_s: float = READY_TIMEOUT_S
    drain_timeout_s: float = DRAIN_TIMEOUT_S


class Supervisor:
    """Runs ``plan.workers`` API processes until SIGTERM/SIGINT (see the module docstring)."""

    def __init__(self, plan: Plan, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self._clock = clock
        self._slots: list[Child | None] = [None] * plan.workers
        self._pending: Child | None = None  # a reload's new process, not serving its slot yet
        self._stopping: list[Child] = []
        self._restart_at_s: dict[int, float] = {}
        self._quick_exits = [0] * plan.workers
        self._exits = 0  # slot processes that exited on their own
        self._stop = self._reload_wanted = False
        self._state = SupervisorState(pid=os.getpid(), address=f"{plan.host}:{plan.port}", workers=plan.workers)
        self._sockets: list[socket.socket] = []
        self._metrics_dir = Path()
        self._signals: SignalPipe | None = None

    def run(self) -> int:
        """Bind, start, serve until a stop signal, stop everything; 0, or 1 when the first start failed."""
        with ExitStack() as resources:
            resources.enter_context(lock_data_dir(self.plan.data_dir))
            self._sockets = bind_slots(
                self.plan.host, self.plan.port, count=self.plan.workers, backlog=self.plan.backlog
            )
            for sock in self._sockets:
                resources.callback(sock.close)
            self._metrics_dir = self.plan.data_dir / METRICS_DIR_NAME  # ours alone: we hold the data directory's lock
            shutil.rmtree(self._metrics_dir, ignore_errors=True)  # what a killed supervisor left
            self._metrics_dir.mkdir()
            resources.callback(shutil.rmtree, self._metrics_dir, ignore_errors=True)
            signals = self._signals = SignalPipe()
            resources.callback(signals.close)
            resources.callback(remove_state, self.plan.data_dir)
            resources.callback(self._stop_everyone)
            return self._serve()
        raise AssertionError("unreachable")  # ExitStack does not swallow exceptions

    def _serve(self) -> int:
        if not self._start():
            return 0 if self._stop else 1  # stopped while starting, or a process could not start
        log.info("api_supervisor_started", address=self._state.address, workers=self.plan.workers)
        while not self._stop:
            if self._reload_wanted:
                self._reload()
            else:
                self._step(STEP_S)
        log.info("api_supervisor_stopping")
        return 0

    def _start(self) -> bool:
        started_s = self._clock()
        for slot in range(self.plan.workers):
            self._slots[slot] = self._spawn(slot)
        while not all(child is not None and child.ready_s is not None for child in self._slots):
            self._step(STEP_S)
            if self._stop:
                return False
            if self._exits or self._clock() - started_s > self.plan.ready_timeout_s:
                log.error("api_start_failed", exited=self._exits, ready_timeout_s=self.plan.ready_timeout_s)
                return False
        self._write_state()
        return True

    # --- processes --------------------------------------------------------------------------------------------

    def _spawn(self, slot: int) -> Child:
        listener = self._sockets[slot].fileno()
        read_fd, write_fd = os.pipe()
        command = [*self.plan.launcher, "api", "--listen-fd", str(listener), "--ready-fd", str(write_fd)]
        command += ["--metrics-dir", str(self._metrics_dir)]
        try:
            cwd = release_dir(self.plan.launcher)  # as the unit's WorkingDirectory: the release it runs
            process = subprocess.Popen(command, pass_fds=(listener, write_fd), cwd=cwd)
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        log.info("api_process_started", slot=slot, pid=process.pid)
        return Child(slot, process, read_fd, started_s=self._clock())

    def _children(self) -> Iterator[Child]:
        yield from (child for child in self._slots if child is not None)
        if self._pending is not None:
            yield self._pending
        yield from self._stopping

    def _retire(self, child: Child) -> None:
        child.stop(now_s=self._clock(), grace_s=self.plan.drain_timeout_s)
        self._stopping.append(child)
        log.info("api_process_stopping", slot=child.slot, pid=child.pid)

    def _step(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for a signal or a readiness byte, then handle everything that happened."""
        assert self._signals is not None
        waiting = {child.ready_fd: child for child in self._children() if child.ready_fd is not None}
        readable, _, _ = select.select([self._signals.fd, *waiting], [], [], timeout_s)
        for signum in self._signals.read():
            self._on_signal(signum)
        now_s = self._clock()
        for fd in readable:
            child = waiting.get(fd)
            if child is not None and child.read_ready(now_s):
                log.info("api_process_ready", slot=child.slot, pid=child.pid, ready_s=round(now_s - child.started_s, 3))
                if child in self._slots:
                    self._write_state()
        self._reap(now_s)
        self._restart_due(now_s)
        for child in self._stopping:
            if child.kill_at_s is not None and now_s >= child.kill_at_s and child.process.returncode is None:
                log.warning(
                    "api_process_killed", slot=child.slot, pid=child.pid, drain_timeout_s=self.plan.drain_timeout_s
                )
                child.signal(signal.SIGKILL)

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stop = True
        elif signum == signal.SIGHUP:
            self._reload_wanted = True

    def _reap(self, now_s: float) -> None:
        for child in [child for child in self._children() if child.process.poll() is not None]:
            child.close()
            retire_process(self._metrics_dir, child.pid)
            status = child.process.returncode
            if child in self._stopping:
                self._stopping.remove(child)
                log.info("api_process_stopped", slot=child.slot, pid=child.pid, status=status)
            elif child is self._pending:
                self._pending = None
            else:
                self._slot_exited(child, now_s)

    def _slot_exited(self, child: Child, now_s: float) -> None:
        """A serving process exited on its own: schedule its replacement."""
        self._slots[child.slot] = None
        self._exits += 1
        quick = now_s - child.started_s < STEADY_S
        self._quick_exits[child.slot] = self._quick_exits[child.slot] + 1 if quick else 1
        delay_s = restart_delay_s(self._quick_exits[child.slot])
        self._restart_at_s[child.slot] = now_s + delay_s
        status = child.process.returncode
        log.warning("api_process_exited", slot=child.slot, pid=child.pid, status=status, restart_in_s=delay_s)
        self._write_state()

    def _restart_due(self, now_s: float) -> None:
        if self._stop:
            return
        for slot, at_s in list(self._restart_at_s.items()):
            if now_s >= at_s:
                del self._restart_at_s[slot]
                self._slots[slot] = self._spawn(slot)
                self._write_state()

    # --- reload and stop --------------------------------------------------------------------------------------

    def _reload(self) -> None:
        self._reload_wanted = False
        started_s = self._clock()
        log.info("api_reload_started", workers=self.plan.workers)
        for slot in range(self.plan.workers):
            failure = self._replace(slot)
            if self._stop:
                return
            if failure is not None:
                self._finish_reload(ok=False, detail=f"slot {slot}: {failure}", started_s=started_s)
                return
        release = release_dir(self.plan.launcher)
        if release is not None:
            os.chdir(release)  # the supervisor's working directory names the release its processes run
        self._finish_reload(ok=True, detail=f"{self.plan.workers} new processes serve", started_s=started_s)

    def _replace(self, slot: int) -> str | None:
        """Start a new process for ``slot``; once it is ready, stop the old one. The reason when it failed."""
        new = self._pending = self._spawn(slot)
        while new.ready_s is None:
            self._step(STEP_S)
            if self._stop:
                return None
            if new.process.returncode is not None:
                return f"the new process exited with status {new.process.returncode} before it was ready"
            if self._clock() - new.started_s > self.plan.ready_timeout_s:
                self._pending = None
                self._retire(new)
                return f"the new process was not ready within {self.plan.ready_timeout_s:g} s"
        self._pending = None
        old, self._slots[slot] = self._slots[slot], new
        self._restart_at_s.pop(slot, None)
        if old is not None:
            self._retire(old)
        self._write_state()
        return None

    def _finish_reload(self, *, ok: bool, detail: str, started_s: float) -> None:
        outcome = ReloadOutcome(ok=ok, detail=detail, duration_s=round(self._clock() - started_s, 3))
        self._state.reloads += 1
        self._state.last_reload = asdict(outcome)
        self._write_state()
        if ok:
            log.info("api_reload_finished", duration_s=outcome.duration_s)
        else:
            log.error("api_reload_failed", reason=detail, duration_s=outcome.duration_s)

    def _stop_everyone(self) -> None:
        self._stop = True
        for child in list(self._children()):
            if child not in self._stopping:
                self._retire(child)
        self._slots = [None] * self.plan.workers
        self._pending = None
        while self._stopping:
            self._step(STEP_S)

    def _write_state(self) -> None:
        self._state.processes = [None if child is None else child.pid for child in self._slots]
        self._state.ready = [child is not None and child.ready_s is not None for child in self._slots]
        write_state(self.plan.data_dir, self._state)


def supervise(settings: Settings, *, host: str, port: int, workers: int) -> NoReturn:
    """``dantaro api --workers N`` (N > 1): become the supervisor of N API processes on ``host:port``. This process
    execs ``python -m app.supervisor`` (same pid, a fresh image without the CLI's imports: about half the memory)."""
    plan = Plan(
        host=host,
        port=port,
        workers=workers,
        backlog=settings.api_max_connections,
        data_dir=settings.data_dir.resolve(),
        launcher=launcher(),
    )
    document = {**asdict(plan), "data_dir": str(plan.data_dir), "log_level": settings.log_level}
    document["log_format"] = settings.log_format
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "app.supervisor", json.dumps(document)])


def plan_from_json(text: str) -> tuple[Plan, dict[str, str]]:
    """The plan ``supervise`` passed on, and its logging settings (``level``, ``log_format``)."""
    document = json.loads(text)
    logging = {"level": document.pop("log_level"), "log_format": document.pop("log_format")}
    document.update(data_dir=Path(document["data_dir"]), launcher=tuple(document["launcher"]))
    return Plan(**document), logging
