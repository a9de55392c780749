"""The bodies of ``GET /api/v1/candles/{symbol}``: per-process copy -> Redis (shared by the API processes) -> database.

Invariants:
- A body answers one question about one run: the newest ``limit`` stored candles of a timeframe that closed at or
  before the run's ``as_of`` (``until_ms``) for the first of the symbol's spellings that has any. The key holds the
  run id, the exchange, the timeframe, the limit and the spellings, so a body never changes and never needs
  invalidating: a new run asks a new question.
- Stored candles are closed candles (the worker stores nothing else); bounding them by the run's ``as_of`` keeps the
  chart on the candles the run's levels and scores were computed from.
- The candles are kept as JSON bytes (served as an ``orjson.Fragment``, never decoded again by this process): at
  most ``max_entries`` bodies per process (the least recently stored is dropped). Redis holds the same bytes under
  ``<prefix>:candles:<exchange>:<key>`` for the snapshot TTL (orjson, never pickle); a Redis failure trips the
  breaker shared with the snapshot reader and the database answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import structlog

from app.api.track_store import DATABASE, MEMORY, REDIS, BoundedMemo, SharedTier, body_key
from app.domain import Candle
from app.storage.queries.candles import CandleReads
from app.storage.sql import Database

log = structlog.get_logger(__name__)

WHAT = "candles"  # how a Redis failure of this store is named in the breaker's reason
MAX_ENTRIES = 64  # a 1000-candle body is about 110 KB of JSON


@dataclass(frozen=True, slots=True)
class CandleQuery:
    """Which candles a request asks for, against one run."""

    exchange: str
    run_id: str
    timeframe: str
    limit: int
    until_ms: int  # the run's as_of: only candles closed at or before it
    candidates: tuple[str, ...]  # the symbol's spellings, the ones the run analysed first
    fallback: str | None  # the symbol answered when no spelling has candles (one the run analysed), else None

    @property
    def key(self) -> str:
        """The body's key: everything it depends on."""
        return body_key(self.exchange, self.run_id, self.timeframe, self.limit, *self.candidates)


@dataclass(frozen=True, slots=True)
class CandleBody:
    """The answer: the symbol read (None: unknown), how many candles, and the candles as a JSON array."""

    symbol: str | None
    count: int
    candles_json: bytes

    def payload(self) -> bytes:
        """The body as stored in Redis (one orjson object)."""
        head = orjson.dumps({"symbol": self.symbol, "count": self.count})
        return head[:-1] + b',"candles":' + self.candles_json + b"}"

    @classmethod
    def from_payload(cls, payload: bytes) -> CandleBody | None:
        """The body stored by ``payload``; None when it is not one (logged by the caller)."""
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("candles"), list):
            return None
        return cls(symbol=data.get("symbol"), count=len(data["candles"]), candles_json=orjson.dumps(data["candles"]))


def candles_json(candles: list[Candle]) -> bytes:
    """Candles as a JSON array of objects (open time in epoch milliseconds, volume in the base currency)."""
    return orjson.dumps(
        [
            {"open_time_ms": c.open_time_ms, "open": c.open, "high": c.high, "low": c.low, "close": c.close,
             "volume": c.volume}
            for c in candles
        ]
    )  # fmt: skip


def load_body(repository: CandleReads, query: CandleQuery) -> CandleBody:
    """The candles of the first spelling that has any (one query for all of them), else ``query.fallback``'s none."""
    found = repository.load(
        exchange=query.exchange,
        timeframe=query.timeframe,
        symbols=list(query.candidates),
        until_ms=query.until_ms,
        limit=query.limit,
    )
    for symbol in query.candidates:
        if found[symbol]:
            return CandleBody(symbol=symbol, count=len(found[symbol]), candles_json=candles_json(found[symbol]))
    return CandleBody(symbol=query.fallback, count=0, candles_json=b"[]")


class CandleStore:
    """Serves candle bodies by query, with the tier that served them."""

    def __init__(
        self,
        *,
        database: Database,
        shared: SharedTier | None = None,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._database = database
        self._shared = shared
        self._bodies: BoundedMemo[CandleBody] = BoundedMemo(max_entries=max_entries)

    def peek(self, query: CandleQuery) -> CandleBody | None:
        """This process's copy of the query's body, or None; never does I/O."""
        return self._bodies.get(query.key)

    def get(self, query: CandleQuery, *, use_cache: bool = True) -> tuple[CandleBody, str]:
        """The query's body and its tier: memory, then Redis, then the database (blocking)."""
        key = query.key
        if use_cache:
            found = self._bodies.get(key)
            if found is not None:
                return found, MEMORY
            found = self._from_redis(query.exchange, key)
            if found is not None:
                self._bodies.put(key, found)
                return found, REDIS
        body = self._database.read(lambda conn: load_body(CandleReads(conn), query))
        if use_cache:
            self._bodies.put(key, body)
            if self._shared is not None:
                self._shared.write(f"candles:{query.exchange}:{key}", body.payload(), what=WHAT)
        return body, DATABASE

    def _from_redis(self, exchange: str, key: str) -> CandleBody | None:
        payload = None if self._shared is None else self._shared.read(f"candles:{exchange}:{key}", what=WHAT)
        if payload is None:
            return None
        body = CandleBody.from_payload(payload)
        if body is None:
            log.warning("candles_cache_payload_invalid", exchange=exchange, key=key)
        return body
