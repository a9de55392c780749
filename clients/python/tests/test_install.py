"""``pip install ./clients/python`` into a brand-new virtualenv, as a user does: the package builds, brings its
dependencies, ships ``py.typed`` and works from the installed copy (not this checkout). It copies the package to a
temporary folder first so the build leaves nothing in the checkout. About 20 s with a warm pip cache; the first run
on a machine downloads httpx2, pydantic and setuptools from the package index."""

from __future__ import annotations

import json
import shutil
import subprocess
import venv
from pathlib import Path

import pytest
from dantaro_client import __version__

PACKAGE_DIR = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT_S = 300
PROBE = """
import json, pathlib, importlib.metadata as metadata
import dantaro_client
from dantaro_client import DantaroClient, RetryPolicy, verify_signature, SignatureVerificationError
from dantaro_client.models import StreamRun
package = pathlib.Path(dantaro_client.__file__).parent
run = StreamRun.model_validate_json('{"run_id":"r1","exchange":"binance","as_of":"2022-06-23T12:00:00+00:00",'
                                    '"published_at":"2026-11-29T10:30:30+00:00"}')
try:
    verify_signature("whsec_x", {}, b"{}")
except SignatureVerificationError as exc:
    refused = str(exc)
client = DantaroClient("http://127.0.0.1:9")
print(json.dumps({
    "version": dantaro_client.__version__,
    "distribution": metadata.version("dantaro-client"),
    "requires": metadata.requires("dantaro-client"),
    "location": str(package),
    "typed": (package / "py.typed").exists(),
    "run": run.run_id,
    "refused": refused,
    "timeout_s": client.timeout.read,
    "attempts": client.retry.max_attempts,
}))
client.close()
"""

pytestmark = pytest.mark.slow


def test_pip_install_into_a_fresh_virtualenv_then_import(tmp_path: Path) -> None:
    source = shutil.copytree(
        PACKAGE_DIR, tmp_path / "dantaro-client", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)]
    installed = subprocess.run(install, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    assert installed.returncode == 0, installed.stderr[-3000:]
    probe = subprocess.run(
        [str(python), "-c", PROBE], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout)
    assert found["version"] == found["distribution"] == __version__ and found["typed"]
    assert found["location"].startswith(str(tmp_path / "venv")), found["location"]
    assert {name.split(">")[0].split("<")[0] for name in found["requires"]} == {"httpx2", "pydantic"}
    assert found["run"] == "r1" and "no Dantaro-Signature header" in found["refused"]
    assert found["timeout_s"] == 10.0 and found["attempts"] == 3
