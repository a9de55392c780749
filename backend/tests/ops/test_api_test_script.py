"""api_test.py, the black-box deployment check, against a real running API: passes, fails, unreachable."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.network import free_port
from tests.support.paths import REPO_ROOT
from tests.support.processes import ApiServer, create_api_key, dantaro_env, run_dantaro


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A migrated SQLite deployment with one published run and an API; yields (base URL, key)."""
    data_dir = tmp_path_factory.mktemp("deployment")
    env = dantaro_env(data_dir)
    assert run_dantaro(["migrate", "upgrade"], env).returncode == 0
    published = run_dantaro(["worker", "--once"], env, timeout_s=120)
    assert published.returncode == 0, published.stderr[-2000:]
    key = create_api_key(env, name="api-test")
    api = ApiServer(env, log_path=data_dir / "api.log").start()
    try:
        yield api.base_url, key
    finally:
        api.kill()


def _api_test(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO_ROOT / "api_test.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_every_check_passes_against_a_healthy_deployment(deployment: tuple[str, str]) -> None:
    base_url, key = deployment
    result = _api_test("--base-url", base_url, "--key", key)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().splitlines()[-1] == "15 passed, 0 failed"


def test_old_data_fails_the_freshness_check(deployment: tuple[str, str]) -> None:
    base_url, key = deployment
    result = _api_test("--base-url", base_url, "--key", key, "--max-age-s", "0.001")
    assert result.returncode == 1
    assert "FAIL  freshness: data is" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "14 passed, 1 failed"


def test_a_wrong_key_fails_the_data_checks(deployment: tuple[str, str]) -> None:
    base_url, _ = deployment
    result = _api_test("--base-url", base_url, "--key", "dk_not_a_key")
    assert result.returncode == 1
    assert "FAIL  recommendations: status 401" in result.stdout


def test_an_unreachable_deployment_exits_2() -> None:
    result = _api_test("--base-url", f"http://127.0.0.1:{free_port()}", "--key", "k", "--timeout-s", "1")
    assert result.returncode == 2
    assert "cannot reach" in result.stdout
