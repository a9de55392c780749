"""structlog for every process: JSON lines when stderr is not a terminal, readable console lines when it is.

structlog's own events take the fast path: the level is checked before any processing, and JSON is rendered with
orjson straight to stderr (a request log line costs tens of microseconds, not hundreds). The standard library's
loggers (uvicorn, APScheduler, ccxt, SQLAlchemy, Alembic) go through ``ProcessorFormatter`` with the same
processors and renderer, so one process writes one format. Call ``configure_logging`` once at process start.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import orjson
import structlog

_THIRD_PARTY = ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler", "ccxt", "sqlalchemy", "alembic")


class _NamedBytesLogger(structlog.BytesLogger):
    """A BytesLogger that remembers the name ``structlog.get_logger(name)`` was called with."""

    def __init__(self, file: Any, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _NamedPrintLogger(structlog.PrintLogger):
    """A PrintLogger that remembers the name ``structlog.get_logger(name)`` was called with."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


def _add_logger_name(logger: Any, _method: str, event_dict: Any) -> Any:
    name = getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


def _orjson_bytes(value: Any, **_: Any) -> bytes:
    return orjson.dumps(value, default=str)


def _orjson_text(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _use_console(log_format: str) -> bool:
    return log_format == "console" or (log_format == "auto" and sys.stderr.isatty())


def _renderer(*, console: bool, as_bytes: bool) -> Any:
    if console:
        return structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    return structlog.processors.JSONRenderer(serializer=_orjson_bytes if as_bytes else _orjson_text)


def _logger_factory(*, console: bool) -> Any:
    if console:
        return lambda *args: _NamedPrintLogger(sys.stderr, args[0] if args else None)
    return lambda *args: _NamedBytesLogger(sys.stderr.buffer, args[0] if args else None)


# Cached loggers skip the processor lookup per call. Tests that run commands in-process turn it off so that
# ``structlog.testing.capture_logs`` still sees the module loggers afterwards.
CACHE_LOGGERS = True


def configure_logging(*, level: str = "INFO", log_format: str = "auto") -> None:
    """Route structlog and stdlib logging through one renderer at ``level``."""
    console = _use_console(log_format)
    level_no = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            _add_logger_name,
            structlog.processors.format_exc_info,
            _renderer(console=console, as_bytes=True),
        ],
        logger_factory=_logger_factory(console=console),
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        cache_logger_on_first_use=CACHE_LOGGERS,
    )
    _route_stdlib(level_no, shared, console=console)


def _route_stdlib(level_no: int, shared: list[Any], *, console: bool) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _renderer(console=console, as_bytes=False),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_no)
    for name in _THIRD_PARTY:
        third_party = logging.getLogger(name)
        third_party.handlers[:] = []
        third_party.propagate = True
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING if level_no > logging.DEBUG else logging.DEBUG)


def uvicorn_log_config() -> dict[str, Any]:
    """A uvicorn ``log_config`` that leaves handlers to ``configure_logging``."""
    return {"version": 1, "disable_existing_loggers": False}
