"""The ``dantaro`` command as a whole: every command registered one way and listed in ``--help``, one-line errors
with exit 2 for input a user can fix, and the production guard on every command that reads the deployment."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.cli.command import Command
from app.cli.main import COMMANDS, build_parser, main
from app.cli.startup import collector_paused, load
from app.config import get_settings

# One invocation per leaf command, with its required arguments (never reaching the network or a server).
LEAVES: dict[str, list[str]] = {
    "run": ["run", "--port", "1"],
    "api": ["api", "--port", "1"],
    "api-reload": ["api-reload"],
    "worker": ["worker", "--once"],
    "migrate": ["migrate", "current"],
    "keys create": ["keys", "create", "--name", "bot"],
    "keys list": ["keys", "list"],
    "keys revoke": ["keys", "revoke", "k1"],
    "webhooks add": ["webhooks", "add", "--url", "https://bot.example/hook", "--events", "run.published"],
    "webhooks list": ["webhooks", "list"],
    "webhooks remove": ["webhooks", "remove", "w1"],
    "webhooks test": ["webhooks", "test", "w1"],
    "webhooks deliveries": ["webhooks", "deliveries"],
    "backfill": ["backfill", "--exchange", "upbit"],
    "track-record backfill": ["track-record", "backfill", "--exchange", "binance"],
    "evaluate": ["evaluate", "--data", "/nonexistent", "--timeframe", "1h"],
    "check-data": ["check-data", "--data", "/nonexistent"],
    "benchmark analysis": ["benchmark", "analysis", "--symbols", "0"],
    "benchmark refit": ["benchmark", "refit", "--symbols", "0"],
    "healthcheck worker": ["healthcheck", "worker"],
}
OFFLINE = {"evaluate", "check-data", "benchmark analysis", "benchmark refit"}  # read only the files they are given


def _leaves(commands: tuple[Command, ...], prefix: str = "") -> Iterator[tuple[str, Command]]:
    for command in commands:
        name = f"{prefix}{command.name}"
        if command.actions:
            yield from _leaves(command.actions, prefix=f"{name} ")
        else:
            yield name, command


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("DANTARO_ENV", "DANTARO_DEV_KEY_ENABLED", "DANTARO_DATABASE_URL", "DANTARO_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DANTARO_ENV_FILE", "/nonexistent/.env")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_every_command_is_listed_with_its_summary(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for command in COMMANDS:
        assert command.name in text and " ".join(command.summary.split()) in text


def test_the_table_above_names_every_leaf_command() -> None:
    assert {name for name, _ in _leaves(COMMANDS)} == set(LEAVES)


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_leaf_help_exits_zero(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*name.split(), "--help"])
    assert exited.value.code == 0
    assert f"usage: dantaro {name}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: COMMAND"),
        (["sideways"], "invalid choice"),
        (["keys"], "required: ACTION"),
        (["keys", "create"], "required: --name"),
        (["keys", "create", "--name", "x", "--rate-limit", "fast"], "is not a rate"),
        (["webhooks", "add", "--url", "https://bot.example/hook"], "required: --events"),
        (["webhooks", "add", "--url", "ftp://bot.example/", "--events", "run.published"], "only http:// and https://"),
        (
            ["webhooks", "add", "--url", "https://b.example/", "--events", "run.published", "--top-n", "x"],
            "invalid int",
        ),
        (["api", "--workers", "0"], "from 1 to 256"),
        (["backfill"], "required: --exchange"),
        (["backfill", "--exchange", "upbit", "--days", "many"], "invalid int value"),
        (["backfill", "--exchange", "no-such-exchange"], "unknown exchange"),
        (["evaluate", "--data", "/nonexistent", "--timeframe", "1h"], "no such directory"),
        (["evaluate", "--data", "/nonexistent", "--timeframe", "1h", "--horizons", "0"], "positive integers"),
        (["check-data", "--data", "/nonexistent"], "no such directory"),
        (["check-data", "--data", ".", "--timeframes", "fortnight"], "unknown timeframe"),
        (["benchmark", "analysis", "--candles", "10"], "--candles >= 60"),
        (["benchmark", "refit", "--days", "0"], "--days > 0"),
        (["healthcheck", "server"], "invalid choice"),
        (["migrate", "downgrade"], "needs a REVISION"),
    ],
)
def test_input_a_user_can_fix_is_one_line_and_exit_2(
    argv: list[str], message: str, environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    environment.setenv("DANTARO_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    status = _exit_status(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert message in err and err.strip().count("\n") == 0, err
    assert err.startswith("dantaro") and "Traceback" not in err


@pytest.mark.parametrize("name", sorted(LEAVES))
@pytest.mark.parametrize(
    "unsafe",
    [
        {"DANTARO_DEV_KEY_ENABLED": "true"},
        {"DANTARO_DEV_KEY_ENABLED": "false", "DANTARO_DATABASE_URL": "postgresql+psycopg2://d:change_me@db/d"},
        {"DANTARO_DEV_KEY_ENABLED": "false", "DANTARO_REDIS_URL": "redis://:Change_Me@cache:6379/0"},
    ],
)
def test_production_refuses_development_defaults(
    name: str, unsafe: dict[str, str], environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("DANTARO_ENV", "production")
    for key, value in unsafe.items():
        environment.setenv(key, value)
    status = _exit_status(LEAVES[name])
    err = capsys.readouterr().err
    if name in OFFLINE:
        assert "refuses to start" not in err  # they fail on their own bad arguments instead
        return
    assert status == 2 and "DANTARO_ENV=production refuses to start" in err, err
    assert err.strip().count("\n") == 0


def test_an_invalid_setting_is_one_line(environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    environment.setenv("DANTARO_API_PORT", "not-a-port")
    assert _exit_status(["migrate", "current"]) == 2
    err = capsys.readouterr().err
    assert "invalid setting DANTARO_API_PORT" in err and err.strip().count("\n") == 0


def test_a_bad_redis_url_is_one_line_without_its_password(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("DANTARO_REDIS_URL", "redis://app:hunter2@cache:6379/0?socket_timeout=2")
    assert _exit_status(["migrate", "current"]) == 2
    err = capsys.readouterr().err
    assert "invalid setting DANTARO_REDIS_URL" in err
    assert "unsupported option(s) in the Redis URL: socket_timeout" in err
    assert "hunter2" not in err and err.strip().count("\n") == 0


def _exit_status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exited:  # argparse errors exit from inside parse_args
        return int(exited.code or 0)


def _collections_while(allocate: Callable[[], object]) -> int:
    collected: list[str] = []

    def on_collect(phase: str, info: dict[str, int]) -> None:
        collected.append(phase)

    gc.callbacks.append(on_collect)
    try:
        allocate()
    finally:
        gc.callbacks.remove(on_collect)
    return len(collected)


def _containers() -> object:
    return [[index] for index in range(50_000)]  # far past the first generation's threshold


def test_the_collector_is_paused_inside_the_block_and_restored_after() -> None:
    assert gc.isenabled() and _collections_while(_containers) > 0  # what the pause must prevent
    with collector_paused():
        assert _collections_while(_containers) == 0
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # a collector paused before stays paused
    finally:
        gc.enable()


def _tracked_ids() -> set[int]:
    return {id(thing) for thing in gc.get_objects()}  # every generation, not the frozen objects


def test_only_a_process_owner_freezes_what_the_block_created() -> None:
    frozen_before = gc.get_freeze_count()
    with collector_paused():
        kept = [[index] for index in range(1_000)]
    assert gc.get_freeze_count() == frozen_before and id(kept) in _tracked_ids()  # a caller's process: collectable
    try:
        with collector_paused(freeze=True):
            made = [[index] for index in range(1_000)]
        tracked = _tracked_ids()
        assert id(made) not in tracked and not any(id(item) in tracked for item in made)
    finally:
        gc.unfreeze()  # this test's process is pytest's


def test_main_freezes_the_start_only_for_the_process_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANTARO_DATABASE_URL", f"sqlite:///{tmp_path}/unmigrated.sqlite3")
    get_settings.cache_clear()
    frozen_before = gc.get_freeze_count()
    main(["keys", "list"])  # fails (not migrated) after its modules loaded: the freeze would have happened
    assert gc.get_freeze_count() == frozen_before
    try:
        main(["keys", "list"], owns_process=True)
        assert gc.get_freeze_count() > frozen_before
    finally:
        gc.unfreeze()
        get_settings.cache_clear()


def test_a_command_loads_its_modules_with_the_collector_paused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "probe_startup_module.py").write_text("import gc\nENABLED = gc.isenabled()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load(["probe_startup_module"])
    assert sys.modules["probe_startup_module"].ENABLED is False and gc.isenabled()
    del sys.modules["probe_startup_module"]


def test_the_api_and_run_commands_load_the_server_before_they_start() -> None:
    loads = {command.name: command.loads for command in COMMANDS}
    assert "app.server" in loads["api"] and "app.server" in loads["run"]
