"""freqtrade's own pairlist code against our API: a virtualenv of its own (its pins differ from ours) and a bot
process driven one command at a time (``tests/support/freqtrade/driver.py``).

The virtualenv is built once per lock file (``freqtrade/requirements.txt``: freqtrade's version and every pin) under
the git-ignored ``.cache/freqtrade/`` of the checkout, with pip from PyPI (about a minute, 0.8 GB), then reused; a
build is serialised by a file lock and marked complete only at its end, so an interrupted build is redone. Without
PyPI the build fails the test with pip's message (it never skips).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import select
import shutil
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from app.exchange.ccxt_source import exchange_config
from tests.support.emulator import Emulator
from tests.support.paths import REPO_ROOT, TESTS_DIR

LOCK_FILE = TESTS_DIR / "support" / "freqtrade" / "requirements.txt"
DRIVER = TESTS_DIR / "support" / "freqtrade" / "driver.py"
CACHE_DIR = REPO_ROOT / ".cache" / "freqtrade"
BUILD_TIMEOUT_S = 1200
ANSWER_TIMEOUT_S = 120
COMPLETE = "complete"  # written into the virtualenv when its install finished


def freqtrade_version() -> str:
    """The freqtrade version the lock file pins."""
    for line in LOCK_FILE.read_text().splitlines():
        if line.lower().startswith("freqtrade=="):
            return line.split("==", 1)[1].strip()
    raise ValueError(f"{LOCK_FILE} pins no freqtrade")


def freqtrade_python() -> Path:
    """The Python of the cached freqtrade virtualenv, built first when missing."""
    digest = hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()[:12]
    venv = CACHE_DIR / f"venv-{freqtrade_version()}-{digest}"
    python = venv / "bin" / "python"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test session may be building the same one
        if not (venv / COMPLETE).exists():
            _build(venv)
    return python


def _build(venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    result = subprocess.run(
        [*pip, "-r", str(LOCK_FILE)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"installing freqtrade into {venv} failed:\n{result.stderr[-3000:]}")
    (venv / COMPLETE).write_text(freqtrade_version())


def bot_config(emulator: Emulator, *, pairlists: list[dict[str, Any]], whitelist: list[str]) -> dict[str, Any]:
    """A dry-run bot's configuration: binance through the emulator (our ccxt defaults), stake USDT."""
    ccxt = exchange_config("binance", emulator.ccxt_options())
    return {
        "dry_run": True,
        "stake_currency": "USDT",
        "trading_mode": "spot",
        "margin_mode": "",
        "exchange": {
            "name": "binance",
            "key": "",
            "secret": "",
            "pair_whitelist": whitelist,
            "pair_blacklist": [],
            "ccxt_config": ccxt,
            "ccxt_async_config": ccxt,
        },
        "pairlists": pairlists,
    }


class FreqtradeBot:
    """A driver process holding one bot's ``PairListManager`` (``start`` it, then ``refresh``)."""

    def __init__(self, config: dict[str, Any], *, log_path: Path) -> None:
        self._log = log_path.open("ab")
        self._process = subprocess.Popen(
            [str(freqtrade_python()), str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.markets: list[str] = self._ask({"op": "start", "config": config})["markets"]

    def refresh(self, *, advance_s: float = 0.0) -> dict[str, Any]:
        """The bot's clock ``advance_s`` ahead, then one pairlist refresh: ``whitelist`` or ``error``, and ``log``."""
        return self._ask({"op": "refresh", "advance_s": advance_s})

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        ready, _, _ = select.select([self._process.stdout], [], [], ANSWER_TIMEOUT_S)
        line = self._process.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"the freqtrade driver gave no answer to {command['op']}; its log: {self._log.name}")
        answer: dict[str, Any] = json.loads(line)
        if "markets" not in answer and command["op"] == "start":
            raise RuntimeError(f"freqtrade could not start: {answer}")
        return answer

    def close(self) -> None:
        """End the driver."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._log.close()

    def __enter__(self) -> FreqtradeBot:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
