"""``dantaro api``: serve the read-only HTTP API (same as ``uvicorn --factory app.main:create_app``)."""

from __future__ import annotations

import argparse

from app.cli.command import Command
from app.cli.serving import bind_address, bind_arguments
from app.config import Settings


def _api(args: argparse.Namespace, settings: Settings) -> int:
    from app.server import run_api

    host, port = bind_address(args, settings)
    run_api(settings, host=host, port=port)
    return 0


COMMAND = Command(
    name="api", summary="serve the read-only HTTP API", run=_api, arguments=bind_arguments, loads=("app.server",)
)
