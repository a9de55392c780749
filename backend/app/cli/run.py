"""``dantaro run``: migrate, then the API and the worker in one process (the embedded development setup)."""

from __future__ import annotations

import argparse
import asyncio

from app.cli.command import Command
from app.cli.serving import bind_address, bind_arguments
from app.config import DEVELOPMENT_KEY, Settings


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from app.server import serve_all
    from app.storage.migrate import upgrade

    upgrade(settings.resolved_database_url)
    host, port = bind_address(args, settings)
    print(f"Dantaro Central on http://{host}:{port}", flush=True)
    if settings.dev_key_active():
        print(f"Development key: {DEVELOPMENT_KEY}", flush=True)
        print(f'Try: curl -H "Authorization: Bearer {DEVELOPMENT_KEY}" http://{host}:{port}/api/v1/recommendations')
    asyncio.run(serve_all(settings, host=host, port=port))
    return 0


COMMAND = Command(
    name="run",
    summary="migrate, then serve the API and run the worker in one process (development)",
    run=_run,
    arguments=bind_arguments,
    loads=("app.server", "app.worker.main"),
)
