"""Publishing a snapshot: the database first (one transaction, the record of truth), then the cache tier.

Invariants:
- The run's rows, ``published_at``, its webhook deliveries (``app.storage.outbox``) and its final status are
  committed together, once; readers of the database see the whole run or none of it, a run that is not committed
  raises no event, and a committed run's events are in the outbox for the worker to deliver.
- The cache is written only after the commit. A cache failure is logged and does not undo the committed run:
  readers fall back to the database until the next successful ``put``.
"""

from __future__ import annotations

import structlog
from sqlalchemy.orm import Session, sessionmaker

from app.domain import RunStatus, Snapshot, utc_now
from app.storage.cache import CacheError, SnapshotCache
from app.storage.outbox import enqueue_run_events
from app.storage.runs import RunRepository

log = structlog.get_logger(__name__)


def publish(snapshot: Snapshot, *, session_factory: sessionmaker[Session], cache: SnapshotCache | None) -> None:
    """Commit the snapshot and finish its run, then put it in the cache (best effort)."""
    symbols_ok = len(snapshot.recommendations)
    symbols_failed = len(snapshot.errors)
    with session_factory.begin() as session:
        runs = RunRepository(session)
        runs.save_snapshot(snapshot)
        deliveries = enqueue_run_events(session, snapshot)
        runs.finish(
            run_id=snapshot.run_id,
            status=RunStatus.PARTIAL if symbols_failed else RunStatus.SUCCEEDED,
            finished_at=utc_now(),
            symbols_total=symbols_ok + symbols_failed,
            symbols_ok=symbols_ok,
            symbols_failed=symbols_failed,
            error=None,
            errors=snapshot.errors,
        )
    log.info(
        "snapshot_committed",
        exchange=snapshot.exchange,
        run_id=snapshot.run_id,
        symbols_ok=symbols_ok,
        symbols_failed=symbols_failed,
        webhook_deliveries=deliveries,
    )
    if cache is None:
        return
    try:
        cache.put(snapshot)
    except CacheError as exc:
        log.warning("snapshot_cache_put_failed", exchange=snapshot.exchange, run_id=snapshot.run_id, error=str(exc))
        return
    log.info("snapshot_cached", exchange=snapshot.exchange, run_id=snapshot.run_id, cache=cache.source_name)
