"""HTTP caching of snapshot responses: a weak ``ETag`` per (run, path, query), ``304`` on ``If-None-Match``, and
``Cache-Control: private, max-age`` until the next run is expected.

Invariants: the ETag changes whenever the run or the request's parameters change (fields like ``age_seconds``
and ``data_source`` may differ between two bodies with the same ETag, hence weak); ``max-age`` =
``generated_at + schedule_interval_s - now`` in whole seconds, floored at 0; a 304 carries no body. The FastAPI
routes and the hot path (``app.api.hot_path``) compute both with these functions.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from app.domain import Snapshot


def etag_for(snapshot: Snapshot, scope: Scope) -> str:
    """The weak validator of the answer from ``snapshot`` to the request of ``scope`` (its method, path, query)."""
    varying = b"%s|%s|%s?%s" % (
        snapshot.exchange.encode(),
        scope["method"].encode(),
        scope["path"].encode(),
        scope["query_string"],
    )
    digest = hashlib.blake2b(varying, digest_size=8).hexdigest()
    return f'W/"{snapshot.run_id}-{digest}"'


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header value matches ``etag`` (weak comparison, ``*`` matches anything)."""
    if not if_none_match:
        return False
    wanted = _opaque(etag)
    return any(tag.strip() == "*" or _opaque(tag) == wanted for tag in if_none_match.split(","))


def max_age_s(snapshot: Snapshot, *, interval_s: float, now: datetime) -> int:
    """Seconds until the next run is expected, floored at 0."""
    remaining_s = (snapshot.generated_at - now).total_seconds() + interval_s
    return max(0, math.floor(remaining_s))


def cache_control(snapshot: Snapshot, *, interval_s: float, now: datetime) -> str:
    """The ``Cache-Control`` value of a response built from ``snapshot``."""
    return f"private, max-age={max_age_s(snapshot, interval_s=interval_s, now=now)}"


def cache_headers(snapshot: Snapshot, scope: Scope, *, interval_s: float, now: datetime) -> dict[str, str]:
    """``ETag`` and ``Cache-Control`` for a response built from ``snapshot`` to the request of ``scope``."""
    return {"ETag": etag_for(snapshot, scope), "Cache-Control": cache_control(snapshot, interval_s=interval_s, now=now)}


def not_modified(request: Request, headers: dict[str, str]) -> Response | None:
    """An empty 304 when the client already holds this answer, else None."""
    if matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return None
