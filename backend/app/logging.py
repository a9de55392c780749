"""structlog for every process: JSON lines when stderr is not a terminal, readable console lines when it is.

structlog's own events take the fast path: the level is checked before any processing, and JSON is rendered with
orjson straight to stderr. The JSON chain is one processor (``_json_line``: context variables, level, timestamp,
logger name, exception text, then orjson), and an ``info`` event goes straight through it while it is the whole
chain (the API's request line, one per request; ``capture_logs`` or any other chain takes structlog's own way). The
timestamp is structlog's ``TimeStamper(fmt="iso", utc=True)`` text, its date and time of day formatted once a
second (``iso_utc``). The standard library's loggers (uvicorn, APScheduler, ccxt, SQLAlchemy, Alembic) go through
``ProcessorFormatter`` with the same first steps and renderer, so one process writes one format. Call
``configure_logging`` once at process start.
"""

from __future__ import annotations

import logging
import sys
import time
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


_LAST_SECOND: list[tuple[int, str]] = [(-1, "")]  # the last whole second stamped, as "YYYY-MM-DDTHH:MM:SS" (UTC)


def iso_utc(now_ns: int) -> str:
    """``now_ns`` (nanoseconds since the epoch) as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes a time:
    ISO 8601 in UTC, microseconds unless they are 0, then ``Z``."""
    second, micro = divmod(now_ns // 1000, 1_000_000)
    last_second, text = _LAST_SECOND[0]  # one tuple: threads never mix one second's text with another's
    if last_second != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _LAST_SECOND[0] = (second, text)
    return f"{text}.{micro:06d}Z" if micro else f"{text}Z"


def add_timestamp(_logger: Any, _method: str, event_dict: Any) -> Any:
    """structlog processor: the ``timestamp`` of now (``iso_utc``)."""
    event_dict["timestamp"] = iso_utc(time.time_ns())
    return event_dict


_SHARED = (structlog.contextvars.merge_contextvars, structlog.processors.add_log_level, add_timestamp)  # + stdlib's
_STEPS = (*_SHARED, _add_logger_name, structlog.processors.format_exc_info)  # structlog's events, then the renderer


def _json_line(logger: Any, method_name: str, event_dict: Any) -> bytes:
    """The JSON chain as one processor: ``_STEPS``, then orjson."""
    for step in _STEPS:
        event_dict = step(logger, method_name, event_dict)
    return _orjson_bytes(event_dict)


def _bound_logger_class(level_no: int, *, json_lines: bool) -> Any:
    """structlog's filtering logger at ``level_no``; for JSON lines, one whose ``info`` calls ``_json_line`` itself
    while it is the whole chain (the same line as structlog's ``_proxy_to_logger`` writes, in fewer calls)."""
    filtering: Any = structlog.make_filtering_bound_logger(level_no)
    if not json_lines or level_no > logging.INFO:
        return filtering

    class JsonLines(filtering):  # type: ignore[misc]
        def info(self, event: str, *args: Any, **kw: Any) -> Any:
            processors = self._processors
            if args or len(processors) != 1 or processors[0] is not _json_line:  # e.g. capture_logs: structlog's way
                return super().info(event, *args, **kw)
            event_dict = self._context.copy()
            event_dict.update(kw)
            if event is not None:
                event_dict["event"] = event
            return self._logger.info(_json_line(self._logger, "info", event_dict))

    return JsonLines


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
    structlog.configure(
        processors=[*_STEPS, _renderer(console=True, as_bytes=True)] if console else [_json_line],
        logger_factory=_logger_factory(console=console),
        wrapper_class=_bound_logger_class(level_no, json_lines=not console),
        cache_logger_on_first_use=CACHE_LOGGERS,
    )
    _route_stdlib(level_no, list(_SHARED), console=console)


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
