"""The ``dantaro`` command: every command is listed in ``COMMANDS``, parsed, guarded and run the same way.

Exit status: 0 done; 2 for input the user can fix (an argument, a setting, ``UsageError`` from any layer, development
defaults under ``DANTARO_ENV=production``), printed as one line; 1 for any other failure (one line on stderr, the
details in the debug log); 130 on Ctrl-C. Never a stack trace on the terminal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import structlog
from pydantic import ValidationError

from app.cli import (
    api,
    api_reload,
    backfill,
    benchmark,
    check_data,
    evaluate,
    healthcheck,
    keys,
    migrate,
    run,
    track_record,
    webhooks,
    worker,
)
from app.cli.command import USAGE_EXIT, Command, OneLineParser, add_command
from app.cli.startup import load
from app.config import Settings, get_settings
from app.errors import UsageError
from app.logging import configure_logging

log = structlog.get_logger(__name__)

COMMANDS: tuple[Command, ...] = (
    run.COMMAND,
    api.COMMAND,
    api_reload.COMMAND,
    worker.COMMAND,
    migrate.COMMAND,
    keys.COMMAND,
    webhooks.COMMAND,
    backfill.COMMAND,
    track_record.COMMAND,
    evaluate.COMMAND,
    check_data.COMMAND,
    benchmark.COMMAND,
    healthcheck.COMMAND,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``dantaro`` command."""
    parser = OneLineParser(prog="dantaro", description="Dantaro Central: market analysis for trading platforms")
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    for command in COMMANDS:
        add_command(commands, command)
    return parser


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "DANTARO_" + "_".join(str(part) for part in first["loc"]).upper()
        raise UsageError(f"invalid setting {name}: {first['msg']}") from None


def _guard(command: Command, settings: Settings) -> None:
    problems = settings.production_problems()
    if problems and command.refuses_production_defaults:
        raise UsageError("DANTARO_ENV=production refuses to start: " + "; ".join(problems))


def main(argv: Sequence[str] | None = None, *, owns_process: bool = False) -> int:
    """Run the ``dantaro`` command ``argv``; returns the exit status. ``owns_process``: the start's objects are
    frozen once its modules are loaded (``app.cli.entry``; never in a caller's process, such as the tests')."""
    args = build_parser().parse_args(argv)
    command: Command = args.command
    prog: str = args.command_prog
    try:
        settings = _settings()
        _guard(command, settings)
        configure_logging(level=settings.log_level, log_format=settings.log_format)
        load(command.loads, freeze=owns_process)
        assert command.run is not None  # add_command refuses a leaf without a handler
        return command.run(args, settings)
    except UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a user-facing command: one readable line, details in the debug log
        log.debug("command_failed", command=prog, error_type=type(exc).__name__, exc_info=True)
        print(f"{prog}: {type(exc).__name__}: {_first_line(exc)}", file=sys.stderr)
        return 1


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
