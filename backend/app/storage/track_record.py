"""The track record: each published run scored at each served horizon (``run_scores``) and every call's outcome
(``symbol_outcomes``), written by the worker's scoring job, read by the API.

Invariants:
- Rows and domain objects convert generically (``codec.to_columns`` / ``codec.decode``): one column per field of
  ``RunScore`` and ``SymbolOutcome``, nested values (labels, exclusions) in JSON columns.
- ``save`` is idempotent: a (run, horizon) whose stored score equals the new one apart from ``scored_at`` is left
  untouched (a rescore changes nothing, not even ``scored_at``, the version the API's ETags derive from); a
  different result replaces the score and the run's outcomes at that horizon (INSERT ... ON CONFLICT DO UPDATE, so
  two concurrent writers cannot fail on the primary key).
- The reads (scores, ``page`` and its cursor, outcomes, the version) are ``app.storage.queries.track_record``,
  shared with the API; this repository runs them in its session.
- ``unscored`` lists the (run, horizon) pairs of published runs without a score, oldest first, keyset-paged by
  (as_of, run_id): only ids and times are read (no JSON), so a long backlog costs little to list.
- Time windows are inclusive: ``since <= as_of <= until``. All datetimes are aware UTC.
- The repository flushes, never commits; rows are deleted with their run (ON DELETE CASCADE).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, literal, or_, select, union_all
from sqlalchemy.orm import Session

from app.domain import RunScore, SymbolOutcome
from app.storage.codec import decode, to_columns
from app.storage.db import dialect_insert, sql_connection
from app.storage.models import AnalysisRunModel, Base, RunScoreModel, SymbolOutcomeModel
from app.storage.queries.track_record import InvalidCursorError, TrackRecordReads, page_cursor, parse_cursor

__all__ = ["InvalidCursorError", "PendingScore", "TrackRecordRepository", "page_cursor", "parse_cursor"]
_KEY_COLUMNS = ("run_id", "horizon")


@dataclass(frozen=True, slots=True)
class PendingScore:
    """A published run not yet scored at one horizon; ``as_of`` is its ``data_as_of``."""

    run_id: str
    horizon: str
    as_of: datetime


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
        """``TrackRecordReads.scores`` in this session."""
        return self._reads().scores(exchange=exchange, horizon=horizon, since=since, until=until)

    def page(self, *, exchange: str, horizon: str, limit: int, before: str | None = None) -> list[RunScore]:
        """``TrackRecordReads.page`` in this session."""
        return self._reads().page(exchange=exchange, horizon=horizon, limit=limit, before=before)

    def symbol_outcomes(
        self, *, exchange: str, symbol: str, horizon: str, since: datetime | None = None
    ) -> list[SymbolOutcome]:
        """``TrackRecordReads.symbol_outcomes`` in this session."""
        return self._reads().symbol_outcomes(exchange=exchange, symbol=symbol, horizon=horizon, since=since)

    def latest_scored_at(self, *, exchange: str) -> datetime | None:
        """``TrackRecordReads.latest_scored_at`` in this session."""
        return self._reads().latest_scored_at(exchange=exchange)

    def _reads(self) -> TrackRecordReads:
        return TrackRecordReads(sql_connection(self._session))


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
