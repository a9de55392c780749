"""The track-record endpoints on stored scores (SQLite and PostgreSQL): the figures, pagination, one symbol's calls,
parameter bounds, auth, 404 / 422 / 503, the empty state. Tiers and HTTP caching: ``test_track_record_tiers.py``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from app.api.responses import dump_json
from app.api.schemas import ErrorResponse
from app.api.track_record import Window, summary_view
from app.api.track_schemas import (
    SymbolTrackRecordResponse,
    TrackRecordResponse,
    TrackRecordRunsResponse,
)
from app.domain import RunScore, Snapshot
from app.storage.publish import publish
from tests.support.api import DEV_AUTH, make_settings, running_client
from tests.support.storage import StorageBackend
from tests.support.track_rows import HOUR, History, save_history, scored_history

SUMMARY = "/api/v1/track-record"
RUNS = "/api/v1/track-record/runs"
SYMBOLS = "/api/v1/track-record/symbols/"
HEAD = ("success", "exchange", "horizon", "horizons", "data_source")


@pytest.fixture
def client(track_db: StorageBackend) -> Iterator[TestClient]:
    """An app on the scored database (binance; upbit configured, never published)."""
    with running_client(make_settings(track_db.url)) as test_client:
        yield test_client


def _get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params, headers=DEV_AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def _scores(history: History, horizon: str) -> list[RunScore]:
    return [score for score, _ in history if score.horizon == horizon]


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == code
    return error.message


def test_the_summary_is_the_aggregation_of_the_stored_runs_of_the_window(
    client: TestClient, track_run: Snapshot, track_history: History
) -> None:
    body = _get(client, SUMMARY, horizon="4h", days=1)
    TrackRecordResponse.model_validate(body)
    window = Window.ending(track_run.data_as_of, days=1)
    kept = [score for score in _scores(track_history, "4h") if window.holds(score.as_of)]
    assert body["runs_scored"] == len(kept) == 23 and body["horizon"] == "4h"  # hourly, from an hour before the current
    assert body["first_run"]["run_id"] == kept[0].run_id and body["last_run"]["run_id"] == kept[-1].run_id
    expected = orjson.loads(dump_json(summary_view(kept, window=window)))
    assert {key: value for key, value in body.items() if key not in HEAD} == expected
    assert body["horizons"] == ["1h", "4h", "24h"] and body["exchange"] == "binance"


def test_the_default_horizon_and_window_are_the_current_runs(client: TestClient, track_run: Snapshot) -> None:
    body = _get(client, SUMMARY)
    assert body["horizon"] == track_run.default_horizon and body["days"] == 30
    assert body["until"] == track_run.data_as_of.isoformat() and body["runs_scored"] == 36


def test_runs_come_newest_first_in_pages_that_cover_every_scored_run(
    client: TestClient, track_history: History
) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        body = _get(client, RUNS, horizon="1h", limit=7, **({} if cursor is None else {"before": cursor}))
        TrackRecordRunsResponse.model_validate(body)
        assert body["count"] == len(body["runs"]) <= 7 and body["limit"] == 7
        seen += [row["run_id"] for row in body["runs"]]
        cursor = body["next_before"]
        if cursor is None:
            break
    assert seen == [score.run_id for score in reversed(_scores(track_history, "1h"))]
    newest = _scores(track_history, "1h")[-1]
    row = _get(client, RUNS, horizon="1h", limit=1)["runs"][0]
    assert (row["ic"], row["random_ic"], row["symbols"]) == (newest.ic, newest.random_ic, newest.symbols)
    assert row["excluded"] == dict(newest.excluded)
    assert [item["count"] for item in row["labels"]] == [o.count for o in newest.labels]


def test_a_page_is_the_same_after_newer_runs_are_scored(
    track_db: StorageBackend, client: TestClient, track_run: Snapshot
) -> None:
    first = _get(client, RUNS, horizon="1h", limit=5)
    second = _get(client, RUNS, horizon="1h", limit=5, before=first["next_before"])
    later = scored_history(track_run, runs=1, seed=99, last_as_of=track_run.data_as_of + HOUR)
    save_history(track_db.session_factory, track_run, later)  # a newer run, published and scored
    again = _get(client, RUNS, horizon="1h", limit=5, before=first["next_before"], use_cache="false")
    assert again["runs"] == second["runs"] and again["next_before"] == second["next_before"]
    top = _get(client, RUNS, horizon="1h", limit=5, use_cache="false")["runs"]
    assert top[0]["run_id"] == later[0][0].run_id and top[1:] == first["runs"][:4]


@pytest.mark.parametrize("spelling", ["BTC", "BTC-USDT", "BTC_USDT", "USDT-BTC", "BTC/USDT"])
def test_a_symbols_calls_under_every_spelling(client: TestClient, track_history: History, spelling: str) -> None:
    body = _get(client, SYMBOLS + spelling, horizon="4h", days=1)
    SymbolTrackRecordResponse.model_validate(body)
    saved = [o for score, outcomes in track_history for o in outcomes if o.symbol == "BTC/USDT" and o.horizon == "4h"]
    assert body["symbol"] == "BTC/USDT" and body["count"] == len(body["calls"]) == 23
    newest = saved[-1]
    call = body["calls"][0]
    assert call["run_id"] == newest.run_id and call["label"] == newest.label.value
    assert (call["score"], call["rank"], call["forward_return"]) == (newest.score, newest.rank, newest.forward_return)
    assert [c["as_of"] for c in body["calls"]] == sorted((c["as_of"] for c in body["calls"]), reverse=True)


def test_symbol_errors(client: TestClient) -> None:
    assert "NOSUCHCOIN" in _error(client.get(SYMBOLS + "NOSUCHCOIN", headers=DEV_AUTH), 404, "unknown_symbol")
    _error(client.get(SYMBOLS + "LUNA", headers=DEV_AUTH), 404, "unknown_symbol")  # analysis failed: no call, no run
    _error(client.get(SYMBOLS + "BTC-ETH-SOL", headers=DEV_AUTH), 422, "invalid_symbol")


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        (SUMMARY, {"days": 0}, "days must be between 1 and 365"),
        (SUMMARY, {"days": 366}, "days must be between 1 and 365"),
        (SYMBOLS + "BTC", {"days": 400}, "days must be between 1 and 365"),
        (RUNS, {"limit": 0}, "limit must be between 1 and 200"),
        (RUNS, {"limit": 201}, "limit must be between 1 and 200"),
        (RUNS, {"before": "x" * 201}, "before"),
        (SUMMARY, {"horizon": "soon"}, "horizon"),
    ],
)
def test_parameter_bounds(client: TestClient, path: str, params: dict[str, Any], message: str) -> None:
    assert message in _error(client.get(path, params=params, headers=DEV_AUTH), 422, "invalid_request")


def test_a_cursor_that_is_not_one_is_a_422(client: TestClient) -> None:
    _error(client.get(RUNS, params={"before": "not-a-cursor"}, headers=DEV_AUTH), 422, "invalid_cursor")


@pytest.mark.parametrize("path", [SUMMARY, RUNS, SYMBOLS + "BTC"])
def test_every_endpoint_checks_the_key_the_exchange_and_the_horizon(client: TestClient, path: str) -> None:
    _error(client.get(path), 401, "unauthorized")
    _error(client.get(path, headers={"Authorization": "Bearer dk_wrong"}), 401, "unauthorized")
    _error(client.get(path, params={"exchange": "nowhere"}, headers=DEV_AUTH), 404, "unknown_exchange")
    _error(client.get(path, params={"exchange": "upbit"}, headers=DEV_AUTH), 503, "data_not_ready")
    message = _error(client.get(path, params={"horizon": "7h"}, headers=DEV_AUTH), 422, "unknown_horizon")
    assert "served: 1h, 4h, 24h" in message


def test_no_scored_run_yet_is_a_200_with_nothing_in_it(backend: StorageBackend, track_run: Snapshot) -> None:
    publish(track_run, session_factory=backend.session_factory, cache=None)
    with running_client(make_settings(backend.url)) as client:
        summary = _get(client, SUMMARY, horizon="1h")
        runs = _get(client, RUNS)
        calls = _get(client, SYMBOLS + "ETH")
    TrackRecordResponse.model_validate(summary)
    assert summary["runs_scored"] == 0 and summary["first_run"] is None and summary["as_of"] is None
    assert summary["model"]["mean_ic"] is None and summary["random_baseline"]["labels"][0]["count"] == 0
    assert runs["runs"] == [] and runs["next_before"] is None
    assert calls["symbol"] == "ETH/USDT" and calls["calls"] == [] and calls["count"] == 0
