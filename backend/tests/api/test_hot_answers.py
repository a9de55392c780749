"""The hot path's prepared answers are bounded in bytes (``hot_path.Answers``): the key is the raw query, so a client
asking for one body under many raw queries (``top_n=20``, ``top_n=20&``, ``top_n=20&&``, ...) makes the process
prepare an answer for each. Each answer holds its body (less the ages) and its raw query; at most
``max_answer_bytes`` of them are held, one larger than that alone is answered but not kept, an answer prepared again
for its key (the data went stale) replaces the old one, a key whose budget is spent makes nothing be prepared, and
each request is still answered by the hot path with the same body."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from app.api.app import API_PREFIX, ApiState, create_app
from app.api.hot_path import HotPath
from app.config import Settings
from app.domain import Snapshot, utc_now
from tests.support.api import DEV_AUTH, Database, inside_one_rate_window
from tests.support.differential import WallClock

PATH = f"{API_PREFIX}/recommendations"
QUERIES = [b"top_n=20" + b"&" * trailing for trailing in range(24)]


@contextmanager
def _hot_client(settings: Settings, *, max_answer_bytes: int) -> Iterator[tuple[TestClient, HotPath, WallClock]]:
    """A client of an app whose hot path keeps at most ``max_answer_bytes``, on a wall clock the test moves."""
    wall = WallClock(utc_now())
    app = create_app(settings, state=ApiState(clock=wall))
    assert isinstance(app.front, HotPath)
    hot = app.front = HotPath(app.front.app, api=app, prefix=API_PREFIX, max_answer_bytes=max_answer_bytes)
    with TestClient(app) as client:
        assert client.get(PATH, headers=DEV_AUTH).status_code == 200  # the first request loads the in-process copy
        yield client, hot, wall


def _answered(client: TestClient) -> float:
    registry = client.app.state.runtime.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value("dantaro_api_hot_path_total", {"outcome": "answered"}) or 0.0


def _ask(client: TestClient, query: bytes) -> tuple[int, Any]:
    """One request answered by the hot path: its body's length and its recommendations."""
    answered = _answered(client)
    response = client.get(f"{PATH}?{query.decode()}", headers=DEV_AUTH)
    assert response.status_code == 200 and _answered(client) == answered + 1
    return len(response.content), response.json()["recommendations"]


def _held_after_each(client: TestClient, hot: HotPath) -> tuple[list[int], list[Any]]:
    """Ask under every spelling in ``QUERIES``; the bytes held after each, and the recommendations answered."""
    held, answers = [], []
    for query in QUERIES:
        answers.append(_ask(client, query)[1])
        held.append(hot.held_bytes())
    return held, answers


def _body_bytes(settings: Settings) -> int:
    """What one answer holds besides its raw query (its body less its ages), measured on an app of its own."""
    with _hot_client(settings, max_answer_bytes=10**9) as (client, hot, _):
        length, _answer = _ask(client, QUERIES[0])
        body_bytes = hot.held_bytes() - len(QUERIES[0])
    assert length - 64 < body_bytes < length  # the ages are a few short numbers
    return body_bytes


def test_each_spelling_holds_its_body_and_query(api_settings: Settings, snapshot: Snapshot) -> None:
    body_bytes = _body_bytes(api_settings)
    with _hot_client(api_settings, max_answer_bytes=10**9) as (client, hot, _):
        held, answers = _held_after_each(client, hot)
    costs = [body_bytes + len(query) for query in QUERIES]
    assert held == [sum(costs[: count + 1]) for count in range(len(QUERIES))]
    assert answers == [answers[0]] * len(QUERIES)


def test_one_more_than_the_budget_drops_them_all(api_settings: Settings, snapshot: Snapshot) -> None:
    costs = [_body_bytes(api_settings) + len(query) for query in QUERIES]
    with _hot_client(api_settings, max_answer_bytes=sum(costs[:3])) as (client, hot, _):  # exactly three
        held, answers = _held_after_each(client, hot)
    assert held[:5] == [costs[0], sum(costs[:2]), sum(costs[:3]), costs[3], sum(costs[3:5])]
    assert max(held) <= sum(costs[:3]) and answers == [answers[0]] * len(QUERIES)


def test_an_answer_larger_than_the_budget_is_answered_not_kept(api_settings: Settings, snapshot: Snapshot) -> None:
    body_bytes = _body_bytes(api_settings)
    with _hot_client(api_settings, max_answer_bytes=body_bytes) as (client, hot, _):  # no answer fits with its query
        held, answers = _held_after_each(client, hot)
    assert held == [0] * len(QUERIES) and answers == [answers[0]] * len(QUERIES)


def test_an_answer_prepared_again_replaces_the_old_one(api_settings: Settings, snapshot: Snapshot) -> None:
    with _hot_client(api_settings, max_answer_bytes=10**9) as (client, hot, wall):
        _ask(client, QUERIES[0])
        fresh = hot.held_bytes()
        wall.now += timedelta(seconds=api_settings.stale_after_s + 60)  # the same key, now a stale answer
        _ask(client, QUERIES[0])
        stale = hot.held_bytes()
    assert fresh > 0 and abs(stale - fresh) <= 8  # one answer held ("stale": true or false), not two


def test_a_key_with_its_budget_spent_makes_nothing_be_prepared(
    database: Database, api_settings: Settings, snapshot: Snapshot
) -> None:
    _, secret = database.create_key(rate_limit_per_min=3)
    auth = {"Authorization": f"Bearer {secret}"}
    inside_one_rate_window()
    statuses, held = [], []
    with _hot_client(api_settings, max_answer_bytes=10**9) as (client, hot, _):
        for query in QUERIES[:5]:  # the first verifies the key through FastAPI; each counts against the budget
            statuses.append(client.get(f"{PATH}?{query.decode()}", headers=auth).status_code)
            held.append(hot.held_bytes())
    assert statuses == [200, 200, 200, 429, 429]
    assert held[0] == 0 < held[1] < held[2] == held[3] == held[4]  # FastAPI's 429s, with nothing prepared for them
