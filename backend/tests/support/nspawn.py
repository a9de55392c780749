"""A Debian machine booted with systemd as PID 1 (``systemd-nspawn -b``), for tests of the systemd units.

``booted_machine`` copies the cached root (``tests.support.debian_root``) into a private tmpfs, boots it in the
background and yields a ``Machine``; commands run inside through ``nsenter`` into the machine's PID 1 with a clean
environment. The machine shares the host's network (PostgreSQL and Redis on 127.0.0.1 are reachable, and what it
serves on 127.0.0.1 is reachable from the host). Invariants: the machine is powered off (killed if it does not stop)
and its tmpfs unmounted when the ``with`` block ends, however it ends; nspawn gets SIGTERM (``setpriv --pdeathsig``)
if the test process dies.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.services import unavailable

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT_S = 120.0
POWEROFF_TIMEOUT_S = 60.0
TMPFS_SIZE = "4G"  # the root (300 MB), a virtualenv (375 MB) and a few releases (15 MB each)


def require_nspawn() -> None:
    """Root, ``debootstrap``, ``systemd-nspawn`` and ``nsenter`` are here, else skip (fail under CI's rule)."""
    if os.geteuid() != 0:
        unavailable("booting a machine with systemd-nspawn needs root")
    for name, package in (("debootstrap", "debootstrap"), ("systemd-nspawn", "systemd-container")):
        if not (shutil.which(name) or Path("/usr/sbin", name).exists() or Path("/usr/bin", name).exists()):
            unavailable(f"{name} is not installed (apt-get install {package})")
    if shutil.which("nsenter") is None:
        unavailable("nsenter is not installed (apt-get install util-linux)")


def _proxy_variables() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.lower().endswith("_proxy")}


class Machine:
    """A booted copy of the root: ``run`` commands inside, ``poweroff`` and ``boot`` it again."""

    def __init__(self, directory: Path, *, name: str, binds: Mapping[Path, str], log_path: Path) -> None:
        self.directory = directory
        self.name = name
        self.binds = dict(binds)  # host path -> path inside, read-only
        self.log_path = log_path
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0  # the machine's PID 1, as the host sees it

    def path(self, inside: str) -> Path:
        """The host path of ``inside`` (an absolute path in the machine's file system)."""
        return self.directory / inside.lstrip("/")

    def boot(self, *, timeout_s: float = BOOT_TIMEOUT_S) -> None:
        """Boot the machine and wait until systemd reports the boot finished (``is-system-running --wait``)."""
        nspawn = ["systemd-nspawn", "-D", str(self.directory), f"--machine={self.name}", "--register=no"]
        args = ["setpriv", "--pdeathsig=SIGTERM", "--", *nspawn, "--keep-unit", "--console=pipe", "--quiet"]
        args += [f"--bind-ro={host}:{inside}" for host, inside in self.binds.items()]
        with self.log_path.open("ab") as log:
            self.nspawn = subprocess.Popen([*args, "-b"], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        self.leader = self._wait_for_leader(deadline)
        while True:  # systemctl fails until the manager listens; then --wait blocks until the boot is done
            left_s = deadline - time.monotonic()
            state = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout_s=max(left_s, 1))
            if state.stdout.strip() in {"running", "degraded"}:
                return
            if left_s <= 0 or self.nspawn.poll() is not None:
                raise RuntimeError(f"the machine did not boot: {state.stdout.strip()}\n{self.boot_log()}")
            time.sleep(0.2)

    def _wait_for_leader(self, deadline: float) -> int:
        assert self.nspawn is not None
        children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
        while time.monotonic() < deadline and self.nspawn.poll() is None:
            for pid in children.read_text().split() if children.exists() else []:
                with suppress(OSError):  # a child that is gone, or not yet systemd
                    if os.readlink(f"/proc/{pid}/exe").endswith("/systemd"):
                        return int(pid)
            time.sleep(0.05)
        raise RuntimeError(f"systemd-nspawn started no machine\n{self.boot_log()}")

    def boot_log(self) -> str:
        """The tail of the console output of every boot so far."""
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def command(self, args: Sequence[str], *, env: Mapping[str, str] | None = None) -> list[str]:
        """The host command that runs ``args`` inside, with a clean environment plus ``env``."""
        if not self.leader:
            raise RuntimeError("the machine is not booted")
        variables = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root", **_proxy_variables(), **(env or {})}
        assignments = [f"{name}={value}" for name, value in variables.items()]
        return ["nsenter", "-t", str(self.leader), "-a", "env", "-i", *assignments, *args]

    def run(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
        timeout_s: float = 120.0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` inside to completion; with ``check`` a non-zero exit raises with its output."""
        result = subprocess.run(
            self.command(args, env=env),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def write_file(self, inside: str, text: str) -> None:
        """Replace the content of ``inside`` (its owner and mode stay: the file is truncated, not replaced)."""
        self.run(["sh", "-c", 'cat > "$1"', "sh", inside], input_text=text)

    def poweroff(self, *, timeout_s: float = POWEROFF_TIMEOUT_S) -> None:
        """``systemctl poweroff`` inside and wait for nspawn to exit; kill the machine if it does not stop."""
        if self.nspawn is None:
            return
        if self.nspawn.poll() is None:
            self.run(["systemctl", "poweroff"], check=False, timeout_s=30)
            try:
                self.nspawn.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self.nspawn, self.leader = None, 0

    def kill(self) -> None:
        """SIGKILL the machine's PID 1 (ends every process inside) and nspawn."""
        for pid in (self.leader, self.nspawn.pid if self.nspawn else 0):
            if pid:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.nspawn is not None:
            self.nspawn.wait(timeout=30)


@contextmanager
def booted_machine(root: Path, workdir: Path, *, name: str, binds: Mapping[Path, str]) -> Iterator[Machine]:
    """A private copy of ``root`` in a tmpfs under ``workdir``, booted; powered off and unmounted at the end.

    A tmpfs because deleting the ~40000 files of a deployed machine from this disk (mounted with ``discard``) took
    up to a minute; unmounting takes nothing, and the copy and the virtualenv install are faster too.
    """
    directory = workdir / name
    directory.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", name, str(directory)], check=True)
    try:
        subprocess.run(["cp", "-a", f"{root}/.", str(directory)], check=True, timeout=300)
        machine = Machine(directory, name=name, binds=binds, log_path=workdir / f"{name}-console.log")
        try:
            machine.boot()
            yield machine
        finally:
            machine.poweroff()
    finally:
        if subprocess.run(["umount", str(directory)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(directory)], check=False)
        directory.rmdir()
