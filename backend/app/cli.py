"""The ``dantaro`` command: api, worker, run (both in one process), migrate.

Errors a user can fix (bad settings, an unreachable database) print one readable line and exit non-zero; no
stack traces on the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

import structlog
from pydantic import ValidationError

from app.backfill import register as register_backfill
from app.config import DEVELOPMENT_KEY, Settings, get_settings
from app.evaluate.cli import register as register_evaluate
from app.keys_cli import register as register_keys
from app.logging import configure_logging
from app.worker.healthcheck import register as register_healthcheck

log = structlog.get_logger(__name__)

Handler = Callable[[argparse.Namespace, Settings], int]
SERVING_COMMANDS = frozenset({"api", "worker", "run"})  # refuse development defaults in production


def _cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    from app.server import serve_api

    asyncio.run(serve_api(settings, host=args.host or settings.api_host, port=args.port or settings.api_port))
    return 0


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from app.worker.main import run_worker

    return asyncio.run(run_worker(settings, once=args.once))


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from app.server import serve_all
    from app.storage.migrate import upgrade

    upgrade(settings.resolved_database_url)
    host, port = args.host or settings.api_host, args.port or settings.api_port
    print(f"Dantaro Central on http://{host}:{port}", flush=True)
    if settings.dev_key_active():
        print(f"Development key: {DEVELOPMENT_KEY}", flush=True)
        print(f'Try: curl -H "Authorization: Bearer {DEVELOPMENT_KEY}" http://{host}:{port}/api/v1/recommendations')
    asyncio.run(serve_all(settings, host=host, port=port))
    return 0


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from app.storage import migrate

    url = settings.resolved_database_url
    if args.action == "upgrade":
        migrate.upgrade(url, args.revision or "head")
        print(f"database at revision {migrate.current(url)}")
    elif args.action == "downgrade":
        migrate.downgrade(url, args.revision or "-1")
        print(f"database at revision {migrate.current(url) or 'none'}")
    elif args.action == "current":
        print(migrate.current(url) or "none")
    else:
        migrate.check(url)
        print("database is at head and matches the models")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``dantaro`` command."""
    parser = argparse.ArgumentParser(
        prog="dantaro", description="Dantaro Central: market analysis for trading platforms"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    api = sub.add_parser("api", help="serve the read-only HTTP API")
    api.add_argument("--host", help="interface to bind (default DANTARO_API_HOST or 127.0.0.1)")
    api.add_argument("--port", type=int, help="port to bind (default DANTARO_API_PORT or 8000)")
    api.set_defaults(handler=_cmd_api)
    worker = sub.add_parser("worker", help="run the analysis worker (collect → analyse → publish on a schedule)")
    worker.add_argument("--once", action="store_true", help="run one cycle per exchange and exit (1 if one failed)")
    worker.set_defaults(handler=_cmd_worker)
    run = sub.add_parser("run", help="migrate, then API and worker in one process (development)")
    run.add_argument("--host", help="interface to bind (default DANTARO_API_HOST or 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to bind (default DANTARO_API_PORT or 8000)")
    run.set_defaults(handler=_cmd_run)
    mig = sub.add_parser("migrate", help="apply or inspect database migrations (Alembic)")
    mig.add_argument("action", nargs="?", default="upgrade", choices=["upgrade", "downgrade", "current", "check"])
    mig.add_argument("revision", nargs="?", help="target revision (upgrade: head, downgrade: -1)")
    mig.set_defaults(handler=_cmd_migrate)
    register_keys(sub)
    register_backfill(sub)
    register_evaluate(sub)
    register_healthcheck(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dantaro`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "DANTARO_" + "_".join(str(p) for p in first["loc"]).upper()
        print(f"dantaro: invalid setting {name}: {first['msg']}", file=sys.stderr)
        return 2
    problems = settings.production_problems()
    if problems and args.command in SERVING_COMMANDS:
        refusal = "; ".join(problems)
        print(f"dantaro {args.command}: DANTARO_ENV=production refuses to start: {refusal}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, log_format=settings.log_format)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a user-facing command: one readable line, details in the log
        log.debug("command_failed", command=args.command, error_type=type(exc).__name__, exc_info=True)
        print(f"dantaro {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
