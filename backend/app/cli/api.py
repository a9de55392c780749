"""``dantaro api [--workers N]``: serve the read-only HTTP API (same as ``uvicorn --factory app.main:create_app``).

``--workers 1`` is one process, as uvicorn runs it; more starts the supervisor (``app.supervisor``). The hidden
``--listen-fd``, ``--ready-fd`` and ``--metrics-dir`` are how the supervisor starts each of its processes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.command import Command
from app.cli.serving import bind_address, bind_arguments
from app.config import Settings


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 256, got {text!r}")
    return value


def _arguments(parser: argparse.ArgumentParser) -> None:
    bind_arguments(parser)
    parser.add_argument(
        "--workers",
        type=_count,
        help="API processes on the address (default DANTARO_API_WORKERS, 0 = the CPUs this process may use); "
        "1 = one unsupervised process",
    )
    parser.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--metrics-dir", type=Path, help=argparse.SUPPRESS)


def _api(args: argparse.Namespace, settings: Settings) -> int:
    from app.server import ProcessWiring, run_api

    host, port = bind_address(args, settings)
    if args.listen_fd is not None:  # one process of a supervised group
        wiring = ProcessWiring(listen_fd=args.listen_fd, ready_fd=args.ready_fd, metrics_dir=args.metrics_dir)
        run_api(settings, host=host, port=port, wiring=wiring)
        return 0
    workers = args.workers or settings.api_processes
    if workers == 1:
        run_api(settings, host=host, port=port)
        return 0
    from app.supervisor.supervisor import supervise

    supervise(settings, host=host, port=port, workers=workers)  # execs the supervisor: does not return


COMMAND = Command(
    name="api", summary="serve the read-only HTTP API", run=_api, arguments=_arguments, loads=("app.server",)
)
