"""The two sides of the hot path's differential test (``tests/api/test_hot_path_differential.py``): the data stack
both apps serve from, the pair of apps with their clients, and how an answer is read and compared (status, headers in
order but ``date``/``server``, raw body; a request id each app made up is compared by its form)."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx2
from sqlalchemy.orm import Session, sessionmaker

from app.api.app import DantaroApi
from app.api.metrics import HOT_PATH_OUTCOMES
from app.domain import Snapshot
from app.storage.api_keys import ApiKeyRepository
from app.storage.cache import SnapshotCache
from app.storage.publish import publish
from app.storage.sql import Database
from tests.support.clocks import ManualClock

API = "/api/v1"
IGNORED = frozenset({b"date", b"server"})
SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
RANDOM_ID = re.compile(rb"[0-9a-f]{32}")
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers in order, raw body
HOT_PATH = "dantaro_api_hot_path_total"


class WallClock:
    """The frozen wall clock both apps read (moved by the test)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Stack:
    """A database (and the cache the worker publishes to) the two apps serve from."""

    name: str
    url: str
    session_factory: sessionmaker[Session]
    database: Database  # the API's view of the same database
    publish_caches: list[SnapshotCache]
    state_cache: SnapshotCache | None  # shared in-process cache (SQLite), or None: each app opens Redis itself
    overrides: dict[bool, dict[str, Any]]  # settings of the hot (True) and the plain app

    def publish(self, snapshot: Snapshot) -> None:
        """Publish ``snapshot`` as the worker does (to both apps' Redis prefixes: the track record's shared tier is
        written by the API, so two apps on one prefix would see each other's bodies)."""
        first, *others = self.publish_caches
        publish(snapshot, session_factory=self.session_factory, cache=first)
        for cache in others:
            cache.put(snapshot)

    def create_key(self, *, rate_limit_per_min: int) -> tuple[str, str]:
        """A new API key (key_id, secret)."""
        with self.session_factory.begin() as session:
            return ApiKeyRepository(session).create(name="differential", rate_limit_per_min=rate_limit_per_min)

    def revoke(self, key_id: str) -> None:
        """Revoke ``key_id``."""
        with self.session_factory.begin() as session:
            assert ApiKeyRepository(session).revoke(key_id)


@dataclass
class Pair:
    """The two apps, clients to them, the clocks they share, and what the hot app did with each request."""

    way: str  # "asgi" (in-process) or "server" (real server configuration on loopback)
    hot: httpx2.Client
    plain: httpx2.Client
    hot_app: DantaroApi
    plain_app: DantaroApi
    wall: WallClock
    keys_clock: ManualClock
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)  # (route, answered|passed)
    request_number: itertools.count[int] = field(default_factory=itertools.count)

    def same(
        self, path: str, headers: dict[str, str] | None = None, *, method: str = "GET", body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request to both apps; assert identical answers; return the hot app's (status, headers, raw
        body)."""
        sent = {"X-Request-ID": f"diff-{next(self.request_number)}", **(headers or {})}
        if self.way == "server":  # on the wire, whitespace around a header value is not part of it (RFC 9110 5.5)
            sent = {name: value.strip() for name, value in sent.items()}
        before = outcomes(self.hot_app)
        hot, plain = (raw_answer(client, method, path, sent, body) for client in (self.hot, self.plain))
        if not SANE_ID.fullmatch(sent["X-Request-ID"]):  # each app makes up its own: compare their form
            hot, plain = made_up_id(hot), made_up_id(plain)
        moved = [outcome for outcome, count in outcomes(self.hot_app).items() if count > before[outcome]]
        self.seen[(route_of(path), moved[0] if moved else "not counted")] += 1
        assert hot == plain, f"{path} {sent}: hot path {hot[:2]} differs from FastAPI {plain[:2]}"
        status, raw_headers, body = hot
        return status, {name.decode(): value.decode() for name, value in raw_headers}, body


def made_up_id(answer: Answer) -> Answer:
    status, headers, body = answer
    assert [RANDOM_ID.fullmatch(value) is not None for name, value in headers if name == b"x-request-id"] == [True]
    return status, [(name, b"(random)" if name == b"x-request-id" else value) for name, value in headers], body


def route_of(path: str) -> str:
    parts = path.split("?", maxsplit=1)[0].removeprefix(API).split("/")
    return "/".join(parts[:3]) if parts[1] == "track-record" else "/".join(parts[:2])


def outcomes(app: DantaroApi) -> dict[str, float]:
    """The hot path's counts by outcome (answered, answered_at_once, passed)."""
    registry = app.state.runtime.metrics.registry
    counts = {outcome: registry.get_sample_value(HOT_PATH, {"outcome": outcome}) for outcome in HOT_PATH_OUTCOMES}
    return {outcome: count or 0.0 for outcome, count in counts.items()}


def answered(app: DantaroApi) -> float:
    counts = outcomes(app)
    return counts["answered"] + counts["answered_at_once"]


def raw_answer(client: httpx2.Client, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Answer:
    with client.stream(method, path, headers=headers, content=body) as response:
        body = b"".join(response.iter_raw())
        kept = [(name, value) for name, value in response.headers.raw if name.lower() not in IGNORED]
        return response.status_code, kept, body
