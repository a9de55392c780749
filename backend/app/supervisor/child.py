"""The supervised side: what one API process does for its supervisor (``app.supervisor.supervisor``).

Invariants: a process says it is ready exactly once, by writing one byte to the pipe it inherited and closing it;
a process whose supervisor dies gets SIGTERM and drains like any other stop, so no orphan keeps serving a port
nobody supervises: from the kernel once it has asked for it (``PR_SET_PDEATHSIG``, Linux, before it serves), and
from itself when its readiness byte finds the pipe closed (the supervisor died before that request took effect).
"""

from __future__ import annotations

import ctypes
import os
import signal

READY = b"r"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def say_ready(ready_fd: int) -> None:
    """Tell the supervisor this process serves (one byte on the readiness pipe, then close it)."""
    try:
        os.write(ready_fd, READY)
    except BrokenPipeError:  # the supervisor died before this process asked for the parent-death signal
        os.kill(os.getpid(), signal.SIGTERM)
    finally:
        os.close(ready_fd)


def die_with_parent() -> None:
    """Have the kernel send SIGTERM to this process when its parent (the supervisor) exits; no-op off Linux."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux
        return
