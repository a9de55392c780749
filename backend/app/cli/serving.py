"""Arguments shared by the commands that bind an HTTP port (``api``, ``run``)."""

from __future__ import annotations

import argparse

from app.config import Settings


def bind_arguments(parser: argparse.ArgumentParser) -> None:
    """``--host`` and ``--port``, defaulting to the settings."""
    parser.add_argument("--host", help="interface to bind (default DANTARO_API_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default DANTARO_API_PORT or 8000)")


def bind_address(args: argparse.Namespace, settings: Settings) -> tuple[str, int]:
    """The (host, port) to bind: the arguments, else the settings."""
    return args.host or settings.api_host, args.port or settings.api_port
