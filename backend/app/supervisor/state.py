"""The supervisor's state file and lock in the data directory, and ``dantaro api-reload``'s side of a reload.

Invariants: at most one supervisor per data directory (an exclusive ``flock`` on ``api-supervisor.lock``, held for
the supervisor's life, released by the kernel when it dies); ``api-supervisor.json`` is replaced atomically and
says the supervisor's pid, its processes by slot (and whether each is ready) and the outcome of its last reload
(``reloads`` counts finished reloads). A reload is asked for with SIGHUP and is finished when ``reloads`` grows.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from app.errors import UsageError

LOCK_NAME = "api-supervisor.lock"
STATE_NAME = "api-supervisor.json"
POLL_S = 0.1


class NotSupervisedError(Exception):
    """No ``dantaro api`` supervisor runs with this data directory (nothing to reload)."""


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """How a reload ended: ``ok``, or the reason the new processes were not started (the old ones still serve)."""

    ok: bool
    detail: str
    duration_s: float


@dataclass(slots=True)
class SupervisorState:
    """What ``api-supervisor.json`` holds."""

    pid: int
    address: str
    workers: int
    processes: list[int | None] = field(default_factory=list)  # pid by slot (None while a slot waits to restart)
    ready: list[bool] = field(default_factory=list)  # by slot: its process said it serves
    reloads: int = 0
    last_reload: dict[str, Any] | None = None  # ReloadOutcome as a dict


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Take the supervisor lock of ``data_dir`` (keep the returned file open); UsageError when another holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / LOCK_NAME).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        holder = read_state(data_dir)
        who = f" (pid {holder.pid})" if holder else ""
        raise UsageError(
            f"another `dantaro api` supervisor{who} uses the data directory {data_dir}; stop it or give this one "
            "its own DANTARO_DATA_DIR"
        ) from None
    return handle


def write_state(data_dir: Path, state: SupervisorState) -> None:
    """Replace the state file atomically."""
    temporary = data_dir / f".{STATE_NAME}.{os.getpid()}"
    temporary.write_text(json.dumps(asdict(state)))
    temporary.replace(data_dir / STATE_NAME)


def remove_state(data_dir: Path) -> None:
    """Forget the state (the supervisor stops)."""
    (data_dir / STATE_NAME).unlink(missing_ok=True)


def read_state(data_dir: Path) -> SupervisorState | None:
    """The state file's content, or None when there is none (or it cannot be read)."""
    try:
        return SupervisorState(**json.loads((data_dir / STATE_NAME).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _running(data_dir: Path) -> bool:
    """Whether a supervisor holds the lock of ``data_dir``."""
    try:
        with (data_dir / LOCK_NAME).open("r") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except FileNotFoundError:
        return False
    except BlockingIOError:
        return True
    return False


def request_reload(
    data_dir: Path, *, pid: int | None, timeout_s: float, clock: Callable[[], float] = time.monotonic
) -> ReloadOutcome:
    """Ask the supervisor of ``data_dir`` (it must be ``pid`` when given) for a graceful reload and wait for its
    outcome; NotSupervisedError when none runs."""
    state = read_state(data_dir)
    if state is None or not _running(data_dir):
        raise NotSupervisedError(f"no `dantaro api` supervisor runs with the data directory {data_dir}")
    if pid is not None and pid != state.pid:
        raise NotSupervisedError(
            f"process {pid} is not the `dantaro api` supervisor of {data_dir} (that is {state.pid})"
        )
    os.kill(state.pid, signal.SIGHUP)
    deadline_s = clock() + timeout_s
    while clock() < deadline_s:
        time.sleep(POLL_S)
        now = read_state(data_dir)
        if now is None or now.pid != state.pid:
            return ReloadOutcome(ok=False, detail="the supervisor stopped during the reload", duration_s=0.0)
        if now.reloads > state.reloads and now.last_reload is not None:
            return ReloadOutcome(**now.last_reload)
    return ReloadOutcome(ok=False, detail=f"no outcome within {timeout_s:g} s", duration_s=timeout_s)
