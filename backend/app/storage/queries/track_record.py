"""The track record as readers see it: run scores by window or page, one symbol's outcomes, and the version.

Invariants:
- ``page`` pages newest first by (as_of, run_id); its cursor (``page_cursor``) is an opaque URL-safe string
  encoding the last row's (as_of, run_id): stable, so a run scored while a client pages never shifts the pages
  already read. ``parse_cursor`` raises ``InvalidCursorError`` (a ``ValueError``) for anything else.
- Time windows are inclusive: ``since <= as_of <= until``. All datetimes are aware UTC.
- ``latest_scored_at`` (the newest ``scored_at``) moves whenever scores are saved: the API's version of the record.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain import RunScore, SymbolOutcome
from app.storage.codec import decode
from app.storage.sql import TABLES, SqlConnection

_CURSOR_SEPARATOR = ":"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SCORES = TABLES["run_scores"]
_OUTCOMES = TABLES["symbol_outcomes"]


class InvalidCursorError(ValueError):
    """A ``before`` cursor that ``page_cursor`` did not make."""


def page_cursor(score: RunScore) -> str:
    """The opaque cursor after ``score``: pass it as ``before`` to get the next (older) page."""
    as_of_us = (score.as_of - _EPOCH) // _MICROSECOND
    key = f"{as_of_us}{_CURSOR_SEPARATOR}{score.run_id}"
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def parse_cursor(cursor: str) -> tuple[datetime, str]:
    """(as_of, run_id) encoded by ``page_cursor``; ``InvalidCursorError`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        as_of_us, run_id = raw.split(_CURSOR_SEPARATOR, 1)
        as_of = _EPOCH + int(as_of_us) * _MICROSECOND
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise InvalidCursorError(f"{cursor!r} is not a track-record cursor: use the one a page returned") from None
    if not run_id or not as_of_us.isdigit():
        raise InvalidCursorError(f"{cursor!r} is not a track-record cursor: use the one a page returned")
    return as_of, run_id


class TrackRecordReads:
    """Reads ``run_scores`` and ``symbol_outcomes`` on one connection."""

    def __init__(self, conn: SqlConnection) -> None:
        self._conn = conn

    def scores(
        self, *, exchange: str, horizon: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[RunScore]:
        """The exchange's scores at ``horizon`` with ``since <= as_of <= until`` (either bound optional), oldest
        first."""
        window, params = _window(since=since, until=until)
        return self._scores(exchange, horizon, f"{window} ORDER BY as_of, run_id", **params)

    def page(self, *, exchange: str, horizon: str, limit: int, before: str | None = None) -> list[RunScore]:
        """Up to ``limit`` scores at ``horizon``, newest first, older than the ``before`` cursor (``page_cursor``);
        ``InvalidCursorError`` for a cursor it did not make."""
        older, params = "", {}
        if before is not None:
            as_of, run_id = parse_cursor(before)
            older = " AND (as_of < :as_of OR (as_of = :as_of AND run_id < :run_id))"
            params = {"as_of": as_of, "run_id": run_id}
        order = " ORDER BY as_of DESC, run_id DESC LIMIT :limit"
        return self._scores(exchange, horizon, older + order, limit=max(0, limit), **params)

    def _scores(self, exchange: str, horizon: str, rest: str, **params: Any) -> list[RunScore]:
        """The exchange's scores at ``horizon`` matching ``rest`` (more conditions, the order, the limit)."""
        rows = self._conn.rows(
            f"SELECT * FROM run_scores WHERE exchange = :exchange AND horizon = :horizon{rest}",
            table=_SCORES,
            exchange=exchange,
            horizon=horizon,
            **params,
        )
        return [decode(RunScore, row) for row in rows]

    def symbol_outcomes(
        self, *, exchange: str, symbol: str, horizon: str, since: datetime | None = None
    ) -> list[SymbolOutcome]:
        """The symbol's calls at ``horizon`` with ``as_of >= since`` and their outcomes, oldest first."""
        window, params = _window(since=since, until=None)
        rows = self._conn.rows(
            "SELECT * FROM symbol_outcomes WHERE exchange = :exchange AND symbol = :symbol AND horizon = :horizon"
            f"{window} ORDER BY as_of, run_id",
            table=_OUTCOMES,
            exchange=exchange,
            symbol=symbol,
            horizon=horizon,
            **params,
        )
        return [decode(SymbolOutcome, row) for row in rows]

    def latest_scored_at(self, *, exchange: str) -> datetime | None:
        """When the exchange's track record last changed (the newest ``scored_at``), or None before any score."""
        rows = self._conn.rows(
            "SELECT max(scored_at) AS scored_at FROM run_scores WHERE exchange = :exchange",
            table=_SCORES,
            exchange=exchange,
        )
        value: datetime | None = rows[0]["scored_at"]
        return value


def _window(*, since: datetime | None, until: datetime | None) -> tuple[str, dict[str, Any]]:
    clause, params = "", {}
    if since is not None:
        clause, params["since"] = clause + " AND as_of >= :since", since
    if until is not None:
        clause, params["until"] = clause + " AND as_of <= :until", until
    return clause, params
