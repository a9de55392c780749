"""The track record: each published run scored at each served horizon (``run_scores``) and every call's outcome
(``symbol_outcomes``), written by the worker's scoring job, read by the API.

Invariants:
- Rows and domain objects convert generically (``codec.to_columns`` / ``codec.decode``): one column per field of
  ``RunScore`` and ``SymbolOutcome``, nested values (labels, exclusions) in JSON columns.
- ``save`` is idempotent: a (run, horizon) whose stored score equals the new one apart from ``scored_at`` is left
  untouched (a rescore changes nothing, not even ``scored_at``, the version the API's ETags derive from); a
  different result replaces the score and the run's outcomes at that horizon (INSERT ... ON CONFLICT DO UPDATE, so
  two concurrent writers cannot fail on the primary key).
- ``page`` pages newest first by (as_of, run_id); its cursor (``page_cursor``) is an opaque URL-safe string
  encoding the last row's (as_of, run_id): stable, so a run scored while a client pages never shifts the pages
  already read. ``parse_cursor`` raises ``InvalidCursorError`` (a ``ValueError``) for anything else.
- ``unscored`` lists the (run, horizon) pairs of published runs without a score, oldest first, keyset-paged by
  (as_of, run_id): only ids and times are read (no JSON), so a long backlog costs little to list.
- Time windows are inclusive: ``since <= as_of <= until``. All datetimes are aware UTC.
- The repository flushes, never commits; rows are deleted with their run (ON DELETE CASCADE).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from app.domain import RunScore, SymbolOutcome
from app.storage.codec import decode, to_columns
from app.storage.db import dialect_insert
from app.storage.models import AnalysisRunModel, Base, RunScoreModel, SymbolOutcomeModel

_CURSOR_SEPARATOR = ":"
_KEY_COLUMNS = ("run_id", "horizon")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class PendingScore:
    """A published run not yet scored at one horizon; ``as_of`` is its ``data_as_of``."""

    run_id: str
    horizon: str
    as_of: datetime


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


class TrackRecordRepository:
    """Reads and writes ``run_scores`` and ``symbol_outcomes`` within the caller's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def save(self, score: RunScore, outcomes: Sequence[SymbolOutcome]) -> None:
        """Store the score of one run at one horizon and its calls' outcomes; a rescore with the same result is a
        no-op, a different one replaces them."""
        stored = self._session.get(RunScoreModel, (score.run_id, score.horizon))
        if stored is not None and _same_score(_decode_score(stored), score):
            return
        row = to_columns(score)
        stmt = dialect_insert(self._session, RunScoreModel)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(_KEY_COLUMNS),
            set_={name: getattr(stmt.excluded, name) for name in row if name not in _KEY_COLUMNS},
        )
        self._session.execute(stmt, [row])
        self._session.execute(
            delete(SymbolOutcomeModel).where(
                SymbolOutcomeModel.run_id == score.run_id, SymbolOutcomeModel.horizon == score.horizon
            )
        )
        if outcomes:
            self._session.execute(dialect_insert(self._session, SymbolOutcomeModel), [to_columns(o) for o in outcomes])
        self._session.expire_all()
        self._session.flush()

    def unscored(
        self,
        *,
        exchange: str,
        ready_until: Mapping[str, datetime],
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> list[PendingScore]:
        """Up to ``limit`` (None: all) unscored (run, horizon) pairs of the exchange's published runs with
        ``as_of <= ready_until[horizon]``, after the ``after`` (as_of, run_id) key, oldest first."""
        if not ready_until or (limit is not None and limit <= 0):
            return []
        branches = [
            select(AnalysisRunModel.run_id, literal(horizon).label("horizon"), AnalysisRunModel.data_as_of).where(
                *_unscored_at(exchange, horizon, until), *_after(after)
            )
            for horizon, until in ready_until.items()
        ]
        pending = union_all(*branches).subquery()
        query = select(pending).order_by(pending.c.data_as_of, pending.c.run_id, pending.c.horizon)
        rows = self._session.execute(query if limit is None else query.limit(limit))
        return [PendingScore(run_id, horizon, _aware(as_of)) for run_id, horizon, as_of in rows]

    def scored_run_ids(self, *, exchange: str, horizon: str) -> set[str]:
        """The ids of the exchange's runs already scored at ``horizon``."""
        rows = self._session.execute(
            select(RunScoreModel.run_id).where(RunScoreModel.exchange == exchange, RunScoreModel.horizon == horizon)
        )
        return set(rows.scalars())

    def scores(
        self, *, exchange: str, horizon: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[RunScore]:
        """The exchange's scores at ``horizon`` with ``since <= as_of <= until`` (either bound optional), oldest
        first."""
        query = select(RunScoreModel).where(RunScoreModel.exchange == exchange, RunScoreModel.horizon == horizon)
        if since is not None:
            query = query.where(RunScoreModel.as_of >= since)
        if until is not None:
            query = query.where(RunScoreModel.as_of <= until)
        rows = self._session.execute(query.order_by(RunScoreModel.as_of, RunScoreModel.run_id)).scalars()
        return [_decode_score(row) for row in rows]

    def page(self, *, exchange: str, horizon: str, limit: int, before: str | None = None) -> list[RunScore]:
        """Up to ``limit`` scores at ``horizon``, newest first, older than the ``before`` cursor (``page_cursor``);
        ``InvalidCursorError`` for a cursor it did not make."""
        query = select(RunScoreModel).where(RunScoreModel.exchange == exchange, RunScoreModel.horizon == horizon)
        if before is not None:
            as_of, run_id = parse_cursor(before)
            query = query.where(
                or_(
                    RunScoreModel.as_of < as_of,
                    and_(RunScoreModel.as_of == as_of, RunScoreModel.run_id < run_id),
                )
            )
        query = query.order_by(RunScoreModel.as_of.desc(), RunScoreModel.run_id.desc()).limit(max(0, limit))
        return [_decode_score(row) for row in self._session.execute(query).scalars()]

    def symbol_outcomes(
        self, *, exchange: str, symbol: str, horizon: str, since: datetime | None = None
    ) -> list[SymbolOutcome]:
        """The symbol's calls at ``horizon`` with ``as_of >= since`` and their outcomes, oldest first."""
        query = select(SymbolOutcomeModel).where(
            SymbolOutcomeModel.exchange == exchange,
            SymbolOutcomeModel.symbol == symbol,
            SymbolOutcomeModel.horizon == horizon,
        )
        if since is not None:
            query = query.where(SymbolOutcomeModel.as_of >= since)
        rows = self._session.execute(query.order_by(SymbolOutcomeModel.as_of, SymbolOutcomeModel.run_id)).scalars()
        return [decode(SymbolOutcome, _columns(row)) for row in rows]

    def latest_scored_at(self, *, exchange: str) -> datetime | None:
        """When the exchange's track record last changed (the newest ``scored_at``), or None before any score."""
        value: datetime | None = self._session.execute(
            select(func.max(RunScoreModel.scored_at)).where(RunScoreModel.exchange == exchange)
        ).scalar_one()
        return value


def _unscored_at(exchange: str, horizon: str, until: datetime) -> list[ColumnElement[bool]]:
    scored = exists().where(RunScoreModel.run_id == AnalysisRunModel.run_id, RunScoreModel.horizon == horizon)
    return [
        AnalysisRunModel.exchange == exchange,
        AnalysisRunModel.published_at.is_not(None),
        AnalysisRunModel.data_as_of.is_not(None),
        AnalysisRunModel.data_as_of <= until,
        ~scored,
    ]


def _after(key: tuple[datetime, str] | None) -> list[ColumnElement[bool]]:
    if key is None:
        return []
    as_of, run_id = key
    return [
        or_(
            AnalysisRunModel.data_as_of > as_of,
            and_(AnalysisRunModel.data_as_of == as_of, AnalysisRunModel.run_id > run_id),
        )
    ]


def _aware(value: datetime) -> datetime:
    """A datetime read through a subquery (the column type may not apply): aware UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _same_score(stored: RunScore, new: RunScore) -> bool:
    return to_columns(stored, exclude=("scored_at",)) == to_columns(new, exclude=("scored_at",))


def _decode_score(row: RunScoreModel) -> RunScore:
    return decode(RunScore, _columns(row))


def _columns(row: Base) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}
