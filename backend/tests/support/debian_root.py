"""A minimal Debian 12 root that systemd-nspawn boots, and a wheelhouse of the pinned requirements for it.

Both live under ``.cache/nspawn/`` (git-ignored), each keyed by what it is made of: the root by the suite, variant,
mirror and package list (``ROOT_KEY``), the wheelhouse by ``requirements.txt``. A local run builds each once; CI
starts from a fresh clone, so there they are built fresh, by ``.ci/run`` in the background while the other checks
run. Invariants: a build goes into a ``*.partial`` folder renamed into place only when complete, and every build
holds an exclusive lock (``build.lock``), so the harness waiting for a background build never sees half a root.

Standard library only: ``.ci/run`` runs this file with the system ``python3`` before the virtualenv exists
(``python3 backend/tests/support/debian_root.py``: build what is missing, print the paths).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
CACHE_DIR = REPO_ROOT / ".cache" / "nspawn"
SUITE = "bookworm"
VARIANT = "minbase"
MIRROR = "http://deb.debian.org/debian"
# systemd as PID 1 and what deploy.sh and the runbook use inside: python3 + venv, sudo (`sudo -u dantaro ...`).
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "sudo")
ROOT_KEY = hashlib.sha256(" ".join((SUITE, VARIANT, MIRROR, *PACKAGES)).encode()).hexdigest()[:12]
BUILD_TIMEOUT_S = 900.0
COMPLETE = ".complete"


def _complete(path: Path) -> bool:
    return (path / COMPLETE).exists()


@contextmanager
def build_lock(cache_dir: Path, *, timeout_s: float = BUILD_TIMEOUT_S) -> Iterator[None]:
    """Hold the cache's exclusive build lock (waits for a build in another process, at most ``timeout_s``)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / "build.lock").open("w") as lock:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another build held {cache_dir / 'build.lock'} for {timeout_s} s") from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_logged(args: list[str], *, log_path: Path, what: str) -> None:
    with log_path.open("w") as log:
        result = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S, check=False)
    if result.returncode != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise RuntimeError(f"{what} exited {result.returncode} (log {log_path}):\n{tail}")


def _build_root(target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a build that died half-way
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    args = [debootstrap, f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}", SUITE, str(partial / "root")]
    _run_logged([*args, MIRROR], log_path=target.parent / f"debootstrap-{ROOT_KEY}.log", what="debootstrap")
    (partial / COMPLETE).touch()
    partial.rename(target)


def _build_wheelhouse(target: Path, requirements: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    # Every pin whatever its environment marker: the root's Python (3.11.2) needs pins the host's may not.
    pins = [line.split(";")[0].split("#")[0].strip() for line in requirements.read_text().splitlines()]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=target.parent, delete=False) as listing:
        listing.write("\n".join(pin for pin in pins if pin) + "\n")
    try:
        args = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "-d", str(partial)]
        _run_logged([*args, "-r", listing.name], log_path=target.parent / "wheelhouse.log", what="pip download")
    finally:
        os.unlink(listing.name)
    (partial / COMPLETE).touch()
    partial.rename(target)


def root_dir(cache_dir: Path = CACHE_DIR) -> Path:
    """Where the root of ``ROOT_KEY`` is cached (``<dir>/root`` is the file system to boot)."""
    return cache_dir / f"debian-{SUITE}-{ROOT_KEY}"


def wheelhouse_dir(requirements: Path, cache_dir: Path = CACHE_DIR) -> Path:
    """Where the wheels of ``requirements`` are cached."""
    return cache_dir / f"wheels-{hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]}"


def prepare(requirements: Path, cache_dir: Path = CACHE_DIR) -> tuple[Path, Path]:
    """The booted root (``.../root``) and the wheelhouse, building whichever is missing (or waiting for a build)."""
    root, wheels = root_dir(cache_dir), wheelhouse_dir(requirements, cache_dir)
    with build_lock(cache_dir):
        if not _complete(root):
            _build_root(root)
        if not _complete(wheels):
            _build_wheelhouse(wheels, requirements)
    return root / "root", wheels


def main() -> int:
    """Build what is missing and print the two paths (``.ci/run`` starts this in the background)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="cache folder (default: .cache/nspawn)")
    args = parser.parse_args()
    started_s = time.monotonic()
    root, wheels = prepare(REPO_ROOT / "requirements.txt", args.cache)
    print(f"root {root}\nwheelhouse {wheels}\nready after {time.monotonic() - started_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
