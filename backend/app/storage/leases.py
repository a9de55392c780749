"""Exactly-once scheduled runs across worker processes: a slot claim plus a PostgreSQL session advisory lock.

Invariants:
- A job is a stable name (``cycle:binance``, ``retention``); a slot is one scheduled occurrence of it (an integer
  the scheduler derives from the wall clock). ``job_claims`` has the primary key (job, slot): the first worker
  whose ``INSERT ... ON CONFLICT DO NOTHING`` inserts the row runs that slot, every other worker skips it.
- On PostgreSQL the run additionally holds ``pg_try_advisory_lock(key)`` (key: a stable signed 64-bit hash of the
  job name) on a dedicated autocommit connection for its whole duration, so two runs of one job never overlap,
  even when one runs longer than the interval. The lock is taken before the claim: a worker that finds the lock
  held skips without claiming (the run in progress covers it). When the holder dies, its connection closes and
  the server releases the lock, so the next slot is run by another worker.
- On SQLite there are no advisory locks: the claim still makes each slot run once, but overlap is only prevented
  within one process (the scheduler runs one instance per job); run one worker process on SQLite.
- Runs still ``running`` when a new run of the same exchange holds the lock belong to a dead worker:
  ``abandon_running`` marks them ``failed``.
Datetimes are aware UTC. Failures raise SQLAlchemy errors; the caller decides whether to skip the slot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.orm import Session

from app.domain import RunStatus, utc_now
from app.storage.db import dialect_insert
from app.storage.models import AnalysisRunModel, JobClaimModel

log = structlog.get_logger(__name__)

ABANDONED_ERROR = "abandoned: the worker stopped during the run"


def advisory_key(job: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock`` derived from the job name (BLAKE2b)."""
    digest = hashlib.blake2b(job.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def claim_slot(session: Session, *, job: str, slot: int, holder: str, claimed_at: datetime | None = None) -> bool:
    """Insert the (job, slot) claim; True when this call inserted it (flushes, the caller commits)."""
    stmt = (
        dialect_insert(session, JobClaimModel)
        .values(job=job, slot=slot, holder=holder, claimed_at=claimed_at or utc_now())
        .on_conflict_do_nothing(index_elements=["job", "slot"])
    )
    result = session.execute(stmt)
    session.flush()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def abandon_running(session: Session, *, exchange: str, finished_at: datetime | None = None) -> list[str]:
    """Mark every ``running`` run of the exchange failed (their worker died); returns their run ids."""
    run_ids = list(
        session.execute(
            select(AnalysisRunModel.run_id).where(
                AnalysisRunModel.exchange == exchange, AnalysisRunModel.status == RunStatus.RUNNING.value
            )
        ).scalars()
    )
    if run_ids:
        session.execute(
            update(AnalysisRunModel)
            .where(AnalysisRunModel.run_id.in_(run_ids), AnalysisRunModel.status == RunStatus.RUNNING.value)
            .values(status=RunStatus.FAILED.value, finished_at=finished_at or utc_now(), error=ABANDONED_ERROR)
        )
        session.flush()
    return run_ids


@dataclass(slots=True)
class JobLock:
    """A held advisory lock (PostgreSQL) or its stand-in (SQLite); release it exactly once."""

    job: str
    key: int
    connection: Connection | None

    def release(self) -> None:
        """Unlock and close the dedicated connection; a broken connection is discarded (the server unlocked)."""
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except Exception:  # the session is gone, and with it the lock; never return it to the pool
            log.warning("advisory_unlock_failed", job=self.job, exc_info=True)
            connection.invalidate()
        finally:
            connection.close()


def try_lock(engine: Engine, *, job: str) -> JobLock | None:
    """Take the job's advisory lock without waiting (PostgreSQL); None when another session holds it."""
    key = advisory_key(job)
    if engine.dialect.name != "postgresql":
        return JobLock(job=job, key=key, connection=None)
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        locked = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one())
    except Exception:
        connection.invalidate()
        connection.close()
        raise
    if not locked:
        connection.close()
        return None
    return JobLock(job=job, key=key, connection=connection)
