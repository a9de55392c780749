"""structlog for every process: JSON lines when stdout is not a terminal, readable console lines when it is.

The standard library's loggers (uvicorn, APScheduler, ccxt, SQLAlchemy) are routed through the same processors,
so one process writes one format. Call ``configure_logging`` once at process start, never at import time.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_THIRD_PARTY = ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler", "ccxt", "sqlalchemy", "alembic")


def _renderer(log_format: str) -> Any:
    use_console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    if use_console:
        return structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    return structlog.processors.JSONRenderer()


def configure_logging(*, level: str = "INFO", log_format: str = "auto") -> None:
    """Route structlog and stdlib logging through one renderer at ``level``."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _renderer(log_format),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _THIRD_PARTY:
        third_party = logging.getLogger(name)
        third_party.handlers[:] = []
        third_party.propagate = True
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING if level.upper() != "DEBUG" else logging.DEBUG)


def uvicorn_log_config() -> dict[str, Any]:
    """A uvicorn ``log_config`` that leaves handlers to ``configure_logging``."""
    return {"version": 1, "disable_existing_loggers": False}
