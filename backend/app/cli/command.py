"""The registration shape every ``dantaro`` command uses, and the parser that reports errors on one line.

Invariants: a ``Command`` is a name, a one-line summary, its arguments and either a handler or sub-actions (each
itself a ``Command``); handlers get the parsed arguments and the settings and return the exit status. Argument
errors print ``<prog>: <message>`` on one line and exit 2 (``USAGE_EXIT``), with no usage dump.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from app.config import Settings

USAGE_EXIT = 2
Handler = Callable[[argparse.Namespace, Settings], int]


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A command without arguments."""


@dataclass(frozen=True, slots=True)
class Command:
    """One ``dantaro`` command (or an action of a command group such as ``keys create``)."""

    name: str
    summary: str
    run: Handler | None = None
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    actions: tuple[Command, ...] = ()
    refuses_production_defaults: bool = True  # False only for commands that never read the deployment's settings
    loads: tuple[str, ...] = ()  # modules imported before the handler runs, with the collector paused (startup.py)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr with exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` after the command's name and exit 2."""
        self.exit(USAGE_EXIT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def add_command(subparsers: argparse._SubParsersAction[Any], command: Command) -> None:
    """Register ``command`` (and its actions, recursively) under ``subparsers``."""
    parser = subparsers.add_parser(command.name, help=command.summary, description=command.summary)
    command.arguments(parser)
    parser.set_defaults(command=command, command_prog=parser.prog)
    if command.actions:
        actions = parser.add_subparsers(dest=f"{command.name}_action", required=True, metavar="ACTION")
        for action in command.actions:
            add_command(actions, action)
    elif command.run is None:
        raise TypeError(f"command {command.name!r} needs a handler or actions")
