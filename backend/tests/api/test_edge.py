"""Bounded requests through the app: bodies over the limit are 413 before they are read, a request with a body is
authenticated before its body is parsed, errors echo only an excerpt of the input, no redirect can point at another
host, ``If-None-Match`` never hides an error, and every error the app answers has the JSON error shape."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from app.api.edge import announced_body
from app.api.schemas import BUNDLE_MAX_SYMBOLS, SYMBOL_MAX_CHARS, ErrorResponse
from app.config import Settings
from app.errors import EXCERPT_CHARS, excerpt
from tests.support.api import DEV_AUTH, Database, make_settings, running_client

BUNDLE = "/api/v1/bundle"
MAX_BODY_BYTES = 2048
JSON = {"Content-Type": "application/json"}
LONG = "A" * 60_000  # far more than any message may echo


@pytest.fixture
def api_settings(database: Database) -> Settings:
    """A small body limit, so a body over it stays cheap to send."""
    return make_settings(database.url, api_max_body_bytes=MAX_BODY_BYTES)


def _error(response: Response, status: int, code: str) -> str:
    """The message of a JSON error with ``status`` and ``code`` (fails on any other answer or shape)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == code
    return error.message


def _chunks(total_bytes: int, *, chunk_bytes: int = 512) -> Iterator[bytes]:
    """A body of ``total_bytes`` sent without a length (``Transfer-Encoding: chunked``)."""
    sent = 0
    while sent < total_bytes:
        size = min(chunk_bytes, total_bytes - sent)
        sent += size
        yield b" " * size


def test_a_body_announced_over_the_limit_is_413_whoever_sends_it(client: TestClient) -> None:
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"
    for headers in ({}, DEV_AUTH, {"Authorization": "Bearer wrong"}):
        refused = client.post(BUNDLE, content=body, headers={**JSON, **headers})
        assert str(MAX_BODY_BYTES) in _error(refused, 413, "payload_too_large")
        assert refused.headers["connection"] == "close"
    assert client.post("/health", content=body).status_code == 413  # any path
    assert client.post(
        BUNDLE, content=b"{" + b" " * (MAX_BODY_BYTES - 2) + b"}", headers={**JSON, **DEV_AUTH}
    ).is_success


def test_a_body_without_a_length_is_counted_and_cut_off(client: TestClient) -> None:
    refused = client.post(BUNDLE, content=_chunks(MAX_BODY_BYTES + 1), headers={**JSON, **DEV_AUTH})
    assert str(MAX_BODY_BYTES) in _error(refused, 413, "payload_too_large")  # cut off mid-stream: tests/ops
    within = client.post(BUNDLE, content=_chunks(MAX_BODY_BYTES - 2), headers={**JSON, **DEV_AUTH})
    assert _error(within, 422, "invalid_request")  # read in full (only spaces: not JSON)


def test_the_key_is_checked_before_the_body_is_parsed(client: TestClient) -> None:
    broken = b'{"include_market_status": tru'  # would be a 422 if it were parsed
    for headers in ({}, {"Authorization": "Bearer dk_nope_nope"}):
        refused = client.post(BUNDLE, content=broken, headers={**JSON, **headers})
        _error(refused, 401, "unauthorized")
        assert refused.headers["www-authenticate"] == "Bearer" and refused.headers["connection"] == "close"
    assert "not valid JSON" in _error(
        client.post(BUNDLE, content=broken, headers={**JSON, **DEV_AUTH}), 422, "invalid_request"
    )


def test_a_response_to_a_request_whose_body_was_not_read_closes_the_connection(client: TestClient) -> None:
    ignored = client.request("GET", "/api/v1/market-status", content=_chunks(100), headers=DEV_AUTH)
    assert ignored.status_code == 200 and ignored.headers["connection"] == "close"
    plain = client.get("/api/v1/market-status", headers=DEV_AUTH)
    assert "connection" not in plain.headers
    assert announced_body([(b"content-length", b"0")]) == (False, 0)
    assert announced_body([(b"transfer-encoding", b"chunked")]) == (True, None)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (
            {"symbols": [LONG], "include_support_levels": True},
            f"symbols[0]: String should have at most {SYMBOL_MAX_CHARS}",
        ),
        ({"symbols": ["BTC"] * (BUNDLE_MAX_SYMBOLS + 1)}, f"symbols: List should have at most {BUNDLE_MAX_SYMBOLS}"),
        ({"symbols": [1] * BUNDLE_MAX_SYMBOLS}, f"and {BUNDLE_MAX_SYMBOLS - 3} more problems"),
        ({LONG: 1}, f"body parameter {'A' * EXCERPT_CHARS}… ({len(LONG) - EXCERPT_CHARS} more characters)"),
        ({"horizon": LONG}, "horizon: String should have at most"),
    ],
    ids=["long-symbol", "too-many-symbols", "many-errors", "long-field-name", "long-horizon"],
)
def test_a_422_names_the_problem_and_echoes_at_most_an_excerpt(
    database: Database, snapshot: object, payload: object, where: str
) -> None:
    with running_client(make_settings(database.url)) as client:  # the default 64 KiB limit
        response = client.post(BUNDLE, content=json.dumps(payload), headers={**JSON, **DEV_AUTH})
    message = _error(response, 422, "invalid_request")
    assert where in message
    assert len(response.content) < 600 and "A" * (EXCERPT_CHARS + 1) not in message


def test_query_and_path_errors_echo_at_most_an_excerpt(client: TestClient) -> None:
    long_query = client.get("/api/v1/recommendations", params={"top_n": "x" * 4000}, headers=DEV_AUTH)
    assert _error(long_query, 422, "invalid_request").startswith("query parameter top_n:")
    unknown_path = client.get("/api/v1/" + "x" * 4000)
    assert "more characters" in _error(unknown_path, 404, "not_found")
    long_symbol = client.get("/api/v1/support-levels/" + "B" * 4000, headers=DEV_AUTH)
    _error(long_symbol, 422, "invalid_request")
    for response in (long_query, unknown_path, long_symbol):
        assert len(response.content) < 600
    assert excerpt("short") == "short" and excerpt("x" * 70, max_chars=60).endswith("… (10 more characters)")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/recommendations/",
        "/api/v1/market-status/",
        "/health/",
        "//evil.example/",
        "//evil.example/api/v1/recommendations/",
        "/docs/",
    ],
)
def test_no_redirect_can_point_at_another_host(client: TestClient, path: str) -> None:
    for method in ("GET", "POST"):
        response = client.request(method, path, headers={**DEV_AUTH, "Host": "evil.example"}, follow_redirects=False)
        assert "location" not in response.headers
        message = _error(response, 404, "not_found")
        assert "evil.example" not in message or path.startswith("//")  # the path itself, never a URL built from Host
    assert "trailing slash" in _error(client.get("/api/v1/recommendations/", headers=DEV_AUTH), 404, "not_found")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/support-levels/DOGE2", 404, "unknown_symbol"),
        ("/api/v1/track-record/symbols/DOGE2", 404, "unknown_symbol"),
        ("/api/v1/recommendations?exchange=kraken", 404, "unknown_exchange"),
        ("/api/v1/recommendations?top_n=0", 422, "invalid_request"),
        ("/api/v1/recommendations?horizon=7w", 422, "unknown_horizon"),
        ("/api/v1/track-record?horizon=7w", 422, "unknown_horizon"),
        ("/api/v1/market-status?exchange=upbit", 503, "data_not_ready"),
        ("/api/v1/nowhere", 404, "not_found"),
    ],
)
def test_if_none_match_never_turns_an_error_into_a_304(client: TestClient, path: str, status: int, code: str) -> None:
    tags = ["*", 'W/"anything"']
    ok = client.get("/api/v1/support-levels/BTC", headers=DEV_AUTH)
    tags.append(ok.headers["etag"])
    for tag in tags:
        _error(client.get(path, headers={**DEV_AUTH, "If-None-Match": tag}), status, code)
    assert client.get("/api/v1/support-levels/BTC", headers={**DEV_AUTH, "If-None-Match": "*"}).status_code == 304


def test_every_error_the_app_answers_has_the_json_shape(database: Database, snapshot: object) -> None:
    settings = make_settings(database.url, cors_origins=["https://app.example.com"])
    preflight = {"Access-Control-Request-Method": "DELETE", "Origin": "https://evil.example"}
    with running_client(settings) as client:
        refused = client.options("/api/v1/recommendations", headers=preflight)
        cross_origin_401 = client.get("/api/v1/recommendations", headers={"Origin": "https://app.example.com"})
        wrong_method = client.post("/health")
        unknown = client.get("/nowhere")
    message = _error(refused, 400, "cors_refused")
    assert "origin" in message and "method" in message and "GET, POST, OPTIONS" in message
    assert refused.headers["vary"].startswith("Origin")
    _error(cross_origin_401, 401, "unauthorized")
    assert cross_origin_401.headers["access-control-allow-origin"] == "https://app.example.com"  # readable by the page
    _error(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "GET"
    _error(unknown, 404, "not_found")
