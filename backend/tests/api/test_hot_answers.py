"""The hot path's prepared answers are bounded in bytes (``hot_path.Answers``): the key is the raw query, so a client
asking for one body under many raw queries (``top_n=20``, ``top_n=20&``, ``top_n=20&&``, ...) makes the process
prepare an answer for each; at most ``max_answer_bytes`` of them are held, and each request is still answered by
the hot path with the same body."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from app.api.app import API_PREFIX, create_app
from app.api.hot_path import HotPath
from app.config import Settings
from app.domain import Snapshot
from tests.support.api import DEV_AUTH

URL = f"{API_PREFIX}/recommendations?top_n=20"
REQUESTS = 24


@contextmanager
def _hot_client(settings: Settings, *, max_answer_bytes: int) -> Iterator[tuple[TestClient, HotPath]]:
    """A client of an app whose hot path keeps at most ``max_answer_bytes`` of prepared answers."""
    app = create_app(settings)
    assert isinstance(app.front, HotPath)
    hot = app.front = HotPath(app.front.app, api=app, prefix=API_PREFIX, max_answer_bytes=max_answer_bytes)
    with TestClient(app) as client:
        yield client, hot


def _answered(client: TestClient) -> float:
    registry = client.app.state.runtime.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value("dantaro_api_hot_path_total", {"outcome": "answered"}) or 0.0


def _same_queries(client: TestClient, hot: HotPath) -> tuple[list[int], list[dict[str, Any]]]:
    """Ask for one body under ``REQUESTS`` raw queries; the bytes held after each, and the bodies."""
    assert client.get(URL, headers=DEV_AUTH).status_code == 200  # the first request loads the in-process copy
    held, bodies = [], []
    for trailing in range(REQUESTS):
        answered = _answered(client)
        response = client.get(URL + "&" * trailing, headers=DEV_AUTH)
        assert response.status_code == 200 and _answered(client) == answered + 1  # the hot path's answer
        bodies.append(response.json()["recommendations"])
        held.append(hot.held_bytes())
    return held, bodies


def test_the_answers_held_stay_within_the_byte_budget(api_settings: Settings, snapshot: Snapshot) -> None:
    with _hot_client(api_settings, max_answer_bytes=10**9) as (client, hot):
        unbounded, bodies = _same_queries(client, hot)
    size = unbounded[0]
    assert size > 0 and unbounded == [size * count for count in range(1, REQUESTS + 1)]  # one answer per raw query
    budget = 3 * size + size // 2
    with _hot_client(api_settings, max_answer_bytes=budget) as (client, hot):
        bounded, bounded_bodies = _same_queries(client, hot)
    assert max(bounded) <= budget and bounded[:4] == [size, 2 * size, 3 * size, size]  # all dropped, then one more
    assert bodies == bounded_bodies == [bodies[0]] * REQUESTS
