"""The supervisor's plumbing: one supervised process (``Child``) and the signals as bytes on a pipe (``SignalPipe``).

Invariants: a child's readiness pipe is read once (a byte: ready; end of file: it exited first) and then closed;
SIGTERM is sent to a child once, with the time after which it is killed; the signal pipe carries SIGTERM, SIGINT,
SIGHUP and SIGCHLD to the supervisor's ``select`` loop, so no signal is handled in the middle of a step.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from types import FrameType

from app.supervisor.child import READY


@dataclass(eq=False, slots=True)
class Child:
    """One API process: its slot, the process, its readiness pipe (until it said ready or exited)."""

    slot: int
    process: subprocess.Popen[bytes]
    ready_fd: int | None
    started_s: float
    ready_s: float | None = None
    kill_at_s: float | None = None  # asked to stop: killed if still running then

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def read_ready(self, now_s: float) -> bool:
        """Read the readiness pipe (it is readable): True when the process said it is ready."""
        assert self.ready_fd is not None
        said = os.read(self.ready_fd, 1)
        self.close()
        if said == READY:
            self.ready_s = now_s
        return self.ready_s is not None

    def stop(self, *, now_s: float, grace_s: float) -> None:
        """SIGTERM (once); the process is killed if it still runs ``grace_s`` later."""
        if self.kill_at_s is None:
            self.kill_at_s = now_s + grace_s
            self.signal(signal.SIGTERM)

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` unless the process is gone (``Popen.send_signal`` checks)."""
        self.process.send_signal(signum)

    def close(self) -> None:
        """Close the readiness pipe."""
        if self.ready_fd is not None:
            os.close(self.ready_fd)
            self.ready_fd = None


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A signal handler that does nothing: the wakeup descriptor carries the signal to the loop."""


class SignalPipe:
    """SIGTERM, SIGINT, SIGHUP and SIGCHLD as bytes on a pipe the loop selects on (``signal.set_wakeup_fd``)."""

    HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)

    def __init__(self) -> None:
        self.fd, self._write_fd = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._write_fd, False)
        self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self._previous = {signum: signal.signal(signum, _ignore) for signum in self.HANDLED}

    def read(self) -> list[int]:
        """The signals received since the last read."""
        try:
            return list(os.read(self.fd, 512))
        except BlockingIOError:
            return []

    def close(self) -> None:
        """Restore the previous handlers."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self.fd)
        os.close(self._write_fd)
