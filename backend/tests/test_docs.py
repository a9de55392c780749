"""The README and docs/ name exactly what exists: every ``dantaro`` command and ``DANTARO_*`` setting they mention
exists, and every command, action and setting that exists is mentioned."""

from __future__ import annotations

import re
from collections.abc import Iterator

from app.cli.command import Command
from app.cli.main import COMMANDS
from app.config import Settings
from tests.support.paths import REPO_ROOT

NOT_SETTINGS = {"DANTARO_ENV_FILE", "DANTARO_TEST_POSTGRES_URL", "DANTARO_TEST_REDIS_URL", "DANTARO_REQUIRE_SERVICES"}
NOT_SETTINGS |= {"DANTARO_LAUNCHER"}  # set by a release's bin/dantaro for the API supervisor (deploy.sh)
# Variables of the deployment files themselves (the nginx site template, the compose file), not settings of the app.
DEPLOYMENT_FILES = ("deployment/nginx/dantaro-api.conf.template", "deployment/docker/docker-compose.yml")
# `dantaro WORD [WORD]` where it is a command: at a line start, after a backtick, a path or a table cell.
COMMAND_MENTION = re.compile(r"(?:^|`|/|\| )dantaro ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", re.MULTILINE)
SETTING_MENTION = re.compile(r"\bDANTARO_[A-Z0-9_]*[A-Z0-9]\b")


def _documents() -> str:
    paths = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    return "\n".join(path.read_text() for path in paths)


def _leaves(commands: tuple[Command, ...], prefix: str = "") -> Iterator[str]:
    for command in commands:
        name = f"{prefix}{command.name}"
        yield from _leaves(command.actions, prefix=f"{name} ") if command.actions else [name]


def _settings() -> set[str]:
    return {f"DANTARO_{name.upper()}" for name in Settings.model_fields}


def test_every_command_mentioned_exists() -> None:
    commands = {command.name: command for command in COMMANDS}
    unknown = set()
    for name, second in COMMAND_MENTION.findall(_documents()):
        command = commands.get(name)
        if command is None:
            unknown.add(name)
        elif command.actions and second and second not in {action.name for action in command.actions}:
            unknown.add(f"{name} {second}")
    assert not unknown, f"documented but not a dantaro command: {sorted(unknown)}"


def test_every_command_and_action_is_mentioned() -> None:
    text = _documents()
    missing = [name for name in _leaves(COMMANDS) if f"dantaro {name}" not in text]
    assert not missing, f"not documented in README.md or docs/: {missing}"


def _deployment_variables() -> set[str]:
    return {
        name
        for path in DEPLOYMENT_FILES
        for name in re.findall(r"\$\{(DANTARO_[A-Z0-9_]+)", (REPO_ROOT / path).read_text())
    } - _settings()


def test_every_setting_mentioned_exists() -> None:
    unknown = set(SETTING_MENTION.findall(_documents())) - _settings() - NOT_SETTINGS - _deployment_variables()
    assert not unknown, f"documented but not a setting: {sorted(unknown)}"


def test_every_setting_is_mentioned() -> None:
    missing = _settings() - set(SETTING_MENTION.findall(_documents()))
    assert not missing, f"settings not documented in README.md or docs/: {sorted(missing)}"
