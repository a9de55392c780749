"""``app.logging``: the JSON line an event becomes, whichever way structlog takes (``info`` straight through the
one-processor chain, the other levels through structlog's own call path), against the line structlog's stock
processors write; the timestamp against ``TimeStamper(fmt="iso", utc=True)``; level filtering and ``capture_logs``
after ``configure_logging``."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
import structlog
from structlog.testing import capture_logs

from app import logging as app_logging
from app.logging import _THIRD_PARTY, _add_logger_name, configure_logging, iso_utc

SECOND_NS = 1_000_000_000
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z")


def _structlog_text(now_ns: int) -> str:
    """What ``TimeStamper(fmt="iso", utc=True)`` writes for an instant (its own code: ``isoformat``, ``Z``)."""
    at = datetime.fromtimestamp(now_ns // SECOND_NS, UTC).replace(microsecond=now_ns // 1000 % 1_000_000)
    return at.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    "now_ns",
    [
        0,  # the epoch, no microseconds
        1_764_477_000 * SECOND_NS,  # a whole second: no fraction, as isoformat writes it
        1_764_477_000 * SECOND_NS + 1_000,  # one microsecond
        1_764_477_000 * SECOND_NS + 999,  # under a microsecond: truncated to none
        1_764_477_059 * SECOND_NS + 999_999_999,  # the last microsecond of a minute
        1_835_481_599 * SECOND_NS + 123_456_789,  # 2028-02-29T23:59:59, a leap day
        4_102_444_800 * SECOND_NS + 500_000_000,  # 2100-01-01
    ],
)
def test_iso_utc_writes_what_structlogs_timestamper_writes(now_ns: int) -> None:
    assert iso_utc(now_ns) == _structlog_text(now_ns)


def test_iso_utc_follows_the_clock_across_seconds_and_back() -> None:
    start_ns = 1_764_477_000 * SECOND_NS
    for offset_ns in (500_000_000, 1_200_000_000, 700_000_000, 1_000_000_000, 86_400 * SECOND_NS, 1_000):
        assert iso_utc(start_ns + offset_ns) == _structlog_text(start_ns + offset_ns)


def test_iso_utc_lies_between_two_readings_around_structlogs_timestamper() -> None:
    stamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    for _ in range(2000):
        before = iso_utc(time.time_ns())
        theirs = stamper(None, "info", {})["timestamp"]
        after = iso_utc(time.time_ns())
        assert STAMP.fullmatch(before) and STAMP.fullmatch(after)
        assert datetime.fromisoformat(before) <= datetime.fromisoformat(theirs) <= datetime.fromisoformat(after)


@pytest.fixture
def stdlib_logging_restored() -> Iterator[None]:
    """``configure_logging`` changes the root logger and the third-party ones (handlers, level, propagation): put
    them back, with the context variables."""
    loggers = [logging.getLogger(name) for name in ("", *_THIRD_PARTY, "sqlalchemy", "alembic", "apscheduler")]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
    structlog.contextvars.clear_contextvars()


def _stock_json_chain() -> None:
    """structlog's stock processors in the order ``app.logging`` documents, writing JSON lines to stderr."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_logger_name,  # the one step structlog has no stock processor for (no stdlib logger)
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=lambda value, **_: orjson.dumps(value, default=str)),
        ]
    )


def _events(log_event: str) -> None:
    """Log the same events (bound context, context variables, values orjson cannot write, an exception, positional
    arguments, no event)."""
    logger = structlog.get_logger("tests.logging").bind(session="s-1")
    structlog.contextvars.bind_contextvars(request_id="r-1")
    getattr(logger, log_event)("request", status=200, when=datetime(2026, 11, 30, tzinfo=UTC), route={"a"})
    try:
        raise ValueError("bad input")
    except ValueError:
        getattr(logger, log_event)("failed", exc_info=True)
    getattr(logger, log_event)("took %s ms for %s", 3, "BTC", route="/x")
    getattr(logger, log_event)(None, status=204)
    structlog.contextvars.clear_contextvars()


def _lines(err: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines()]


@pytest.mark.parametrize("cached", [True, False])
@pytest.mark.parametrize("levels", [("INFO", "info"), ("INFO", "warning"), ("DEBUG", "info")])
def test_a_line_is_the_line_structlogs_stock_processors_write(
    levels: tuple[str, str],
    cached: bool,
    capsysbinary: pytest.CaptureFixture[bytes],
    stdlib_logging_restored: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configured, level = levels  # the level configured, the level logged at
    monkeypatch.setattr(app_logging, "CACHE_LOGGERS", cached)  # production caches; the tests' conftest does not
    configure_logging(level=configured, log_format="json")
    _events(level)
    ours = _lines(capsysbinary.readouterr().err)
    _stock_json_chain()
    _events(level)
    stock = _lines(capsysbinary.readouterr().err)
    assert len(ours) == len(stock) == 4
    for mine, theirs in zip(ours, stock, strict=True):
        assert list(mine) == list(theirs)  # the same keys in the same order
        assert STAMP.fullmatch(str(mine.pop("timestamp"))) and STAMP.fullmatch(str(theirs.pop("timestamp")))
        assert mine == theirs
    assert ours[0]["request_id"] == "r-1" and ours[0]["session"] == "s-1" and ours[0]["level"] == level
    assert "ValueError: bad input" in str(ours[1]["exception"])
    assert ours[2]["event"] == "took 3 ms for BTC" and "event" not in ours[3]


@pytest.mark.parametrize("configured", ["INFO", "DEBUG"])
def test_an_info_event_skips_structlogs_call_path_while_the_chain_is_ours(
    configured: str,
    capsysbinary: pytest.CaptureFixture[bytes],
    stdlib_logging_restored: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure_logging(level=configured, log_format="json")
    logger = structlog.get_logger("tests.logging").bind()
    proxied: list[str] = []
    through = type(logger)._proxy_to_logger

    def proxy(self: object, name: str, *args: object, **kw: object) -> object:
        proxied.append(name)
        return through(self, name, *args, **kw)

    monkeypatch.setattr(type(logger), "_proxy_to_logger", proxy)
    logger.info("request", status=200)
    logger.info("took %s ms", 3)  # positional arguments: structlog interpolates them
    logger.warning("slow")
    with capture_logs():
        logger.info("captured")
    assert proxied == ["info", "warning", "info"]
    assert [line["event"] for line in _lines(capsysbinary.readouterr().err)] == ["request", "took 3 ms", "slow"]


def test_info_is_dropped_below_the_configured_level(
    capsysbinary: pytest.CaptureFixture[bytes], stdlib_logging_restored: None
) -> None:
    configure_logging(level="WARNING", log_format="json")
    logger = structlog.get_logger("tests.logging")
    logger.info("request", status=200)
    logger.warning("slow", status=200)
    assert [line["event"] for line in _lines(capsysbinary.readouterr().err)] == ["slow"]


def test_capture_logs_sees_info_events_after_configure_logging(
    capsysbinary: pytest.CaptureFixture[bytes], stdlib_logging_restored: None
) -> None:
    configure_logging(level="INFO", log_format="json")
    with capture_logs() as captured:
        structlog.get_logger("tests.logging").info("request", status=200)
    assert captured == [{"event": "request", "status": 200, "log_level": "info"}]
    assert capsysbinary.readouterr().err == b""


def test_the_console_format_writes_readable_lines(
    capsys: pytest.CaptureFixture[str], stdlib_logging_restored: None
) -> None:
    configure_logging(level="INFO", log_format="console")
    structlog.get_logger("tests.logging").info("request", status=200)
    err = capsys.readouterr().err
    assert "request" in err and "status=200" in err and not err.lstrip().startswith("{")
