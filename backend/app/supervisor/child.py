"""The supervised side: what one API process does for its supervisor (``app.supervisor.supervisor``).

Invariants: a process says it is ready exactly once, by writing one byte to the pipe it inherited and closing it;
a process whose supervisor dies gets SIGTERM from the kernel (``PR_SET_PDEATHSIG``, Linux) and drains like any
other stop, so no orphan keeps serving a port nobody supervises.
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
    except OSError:  # the supervisor is gone: the parent-death signal stops this process
        pass
    finally:
        os.close(ready_fd)


def die_with_parent() -> None:
    """Have the kernel send SIGTERM to this process when its parent (the supervisor) exits; no-op off Linux."""
    parent_pid = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
