"""``dantaro worker [--once]``: the analysis worker (same as ``python backend/analysis_worker.py``)."""

from __future__ import annotations

import argparse
import asyncio

from app.cli.command import Command
from app.config import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="run one cycle per exchange and exit (1 if one failed)")


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from app.worker.main import run_worker

    return asyncio.run(run_worker(settings, once=args.once))


COMMAND = Command(
    name="worker",
    summary="run the analysis worker (collect -> analyse -> publish on a schedule)",
    run=_worker,
    arguments=_arguments,
)
