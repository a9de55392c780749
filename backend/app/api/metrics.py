"""The API's Prometheus metrics, on a registry of their own (one per app, so tests and ``dantaro run`` never mix
the API's series with the worker's).

Invariants: ``route`` labels are route templates (``/api/v1/support-levels/{symbol}``) or ``unmatched``, never raw
paths, so label sets stay bounded; durations are seconds; ``tier`` is the served snapshot's data source
(``memory``, ``redis``, ``database``; ``cache`` for the in-process cache of ``dantaro run``); the freshness gauges
are computed from the newest ``generated_at`` seen per exchange, so they keep ageing while storage is unreachable;
``dantaro_api_redis_up`` exists only when Redis is configured.

Several API processes (``dantaro api --workers N``): the counters and histograms (the loop series) of every process
are summed on ``/metrics`` (``ApiMetrics.spooled``: each process writes its series to the shared spool directory every
``SPOOL_EVERY_S`` and when it stops, so another process's latest second may be missing from a scrape); the gauges
(freshness, Redis up) are the answering process's own view, refreshed at scrape time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge

from app.domain import utc_now
from app.prometheus import (
    LATENCY_BUCKETS_S,
    LoopCounter,
    LoopHistogram,
    ProcessSpool,
    aggregated_exposition,
    exposition,
)

UNMATCHED_ROUTE = "unmatched"
TIERS = ("memory", "redis", "database")
FALLBACK_REASONS = ("redis_error", "cache_miss")
HOT_PATH_ANSWERED, HOT_PATH_AT_ONCE, HOT_PATH_PASSED = ("answered",), ("answered_at_once",), ("passed",)
HOT_PATH_OUTCOMES = ("answered", "answered_at_once", "passed")
SPOOL_EVERY_S = 1.0


class ApiMetrics:
    """Request, snapshot-read and freshness metrics of one API app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Per-request series: updated on the event loop only, without locks (``app.prometheus.LoopCounter``).
        self._requests = LoopCounter(
            "dantaro_api_requests",
            "API requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._duration = LoopHistogram(
            "dantaro_api_request_duration_seconds",
            "API request latency by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._reads = LoopCounter(
            "dantaro_api_snapshot_reads",
            "Served snapshots by the tier they came from.",
            ["tier"],
            registry=self.registry,
        )
        self._fallbacks = LoopCounter(
            "dantaro_api_cache_fallbacks",
            "Reads that fell back from the shared cache to the database.",
            ["reason"],
            registry=self.registry,
        )
        self._rate_limited = LoopCounter(
            "dantaro_api_rate_limited",
            "Requests refused with 429 (per-key budget used up).",
            [],
            registry=self.registry,
        )
        self._hot_path = LoopCounter(
            "dantaro_api_hot_path",
            "GET requests to the data endpoints by who answered: the hot path through the ASGI stack (answered) or "
            "written by the server's protocol (answered_at_once), or FastAPI (passed).",
            ["outcome"],
            registry=self.registry,
        )
        self.loop_series: tuple[LoopCounter | LoopHistogram, ...] = (
            *(self._requests, self._duration, self._reads),
            *(self._fallbacks, self._rate_limited, self._hot_path),
        )
        self.local_registry = CollectorRegistry(auto_describe=True)  # this process's view; also in ``registry``
        self._age = Gauge(
            "dantaro_api_data_age_seconds",
            "Seconds since the newest served run was generated.",
            ["exchange"],
            registry=self.local_registry,
        )
        self._stale = Gauge(
            "dantaro_api_data_stale",
            "1 when the newest served run is older than the stale threshold.",
            ["exchange"],
            registry=self.local_registry,
        )
        self.registry.register(self.local_registry)
        self._redis_up: Gauge | None = None
        self._generated_at: dict[str, datetime] = {}
        self._spool: ProcessSpool | None = None
        self._rate_limited.ensure(())
        for tier in TIERS:  # zero-valued series exist before the first event
            self._reads.ensure((tier,))
        for reason in FALLBACK_REASONS:
            self._fallbacks.ensure((reason,))
        for outcome in HOT_PATH_OUTCOMES:
            self._hot_path.ensure((outcome,))

    def observe_request(self, *, route: str, method: str, status: int, duration_s: float) -> None:
        """Count one finished request and its latency."""
        self._requests.inc((route, method, str(status)))
        self._duration.observe((route,), duration_s)

    def observe_read(self, *, exchange: str, tier: str, generated_at: datetime, fallback: str | None) -> None:
        """Count one served snapshot, its tier and (when the shared cache was bypassed) the fallback reason."""
        self._reads.inc((tier,))
        if fallback is not None:
            self._fallbacks.inc((fallback,))
        self.saw_run(exchange, generated_at=generated_at)

    def refused_by_rate_limit(self) -> None:
        """Count one request refused with 429 (the key's budget is used up)."""
        self._rate_limited.inc(())

    def hot_path(self, outcome: tuple[str]) -> None:
        """Count one data GET the hot path answered (``HOT_PATH_ANSWERED``, ``HOT_PATH_AT_ONCE``) or passed on."""
        self._hot_path.inc(outcome)

    def saw_run(self, exchange: str, *, generated_at: datetime) -> None:
        """Remember the newest ``generated_at`` seen for ``exchange`` (the freshness gauges derive from it)."""
        known = self._generated_at.get(exchange)
        if known is None or generated_at > known:
            self._generated_at[exchange] = generated_at

    def enable_redis_gauge(self) -> None:
        """Export ``dantaro_api_redis_up`` (only apps configured with Redis call this)."""
        if self._redis_up is None:
            self._redis_up = Gauge(
                "dantaro_api_redis_up",
                "1 while the API uses Redis, 0 while its circuit breaker skips it.",
                registry=self.local_registry,
            )

    def refresh(self, *, stale_after_s: float, redis_usable: bool | None, now: datetime | None = None) -> None:
        """Set the scrape-time gauges: data age and staleness per exchange, and Redis up when configured."""
        at = now or utc_now()
        for exchange, generated_at in list(self._generated_at.items()):
            age_s = max(0.0, (at - generated_at).total_seconds())
            self._age.labels(exchange).set(age_s)
            self._stale.labels(exchange).set(1 if age_s > stale_after_s else 0)
        if self._redis_up is not None and redis_usable is not None:
            self._redis_up.set(1 if redis_usable else 0)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition: this process's series, or every process's summed while ``spooled``."""
        body, content_type = exposition(self.registry)
        if self._spool is None:
            return body, content_type
        self._spool.flush()
        return aggregated_exposition(self._spool.directory, local=[self.local_registry]), content_type

    @contextlib.asynccontextmanager
    async def spooled(self, directory: Path | None) -> AsyncIterator[None]:
        """While open (the app's lifespan), the loop series are spooled to ``directory`` (None: not at all)."""
        if directory is None:
            yield
            return
        spool = self._spool = ProcessSpool(directory, self.loop_series)
        task = asyncio.create_task(_flush_forever(spool))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            spool.close()
            self._spool = None


async def _flush_forever(spool: ProcessSpool) -> None:
    while True:
        await asyncio.sleep(SPOOL_EVERY_S)
        spool.flush()
