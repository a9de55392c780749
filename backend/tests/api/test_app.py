"""The app factory, its error shape, the OpenAPI spec, and the API's import isolation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio.to_thread
import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from app.api.app import create_app
from app.api.schemas import ErrorResponse
from app.config import get_settings
from app.storage.models import AnalysisRunModel
from tests.support.api import DEV_AUTH, Database, make_settings, migrated_database, running_client
from tests.support.paths import BACKEND_DIR
from tests.support.snapshots import build_snapshot

FORBIDDEN_MODULES = ("pandas", "numpy", "ccxt", "app.analysis", "app.exchange")


def test_importing_app_main_loads_no_analysis_stack_and_builds_nothing(tmp_path: Path) -> None:
    probe = (
        "import json, sys, app.main\n"
        "from app.config import get_settings\n"
        f"print(json.dumps({{'loaded': [m for m in {FORBIDDEN_MODULES!r} if m in sys.modules],"
        " 'settings_built': get_settings.cache_info().currsize}))\n"
    )
    env = {**os.environ, "DANTARO_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=BACKEND_DIR, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"loaded": [], "settings_built": 0}
    assert list(tmp_path.iterdir()) == []  # no database file was created


# What the API process never needs: the analysis stack, the worker's scheduler and migrations, the plotting library,
# OpenTelemetry's SDK (FastAPI's own hooks are off), structlog's optional pretty printers and FastAPI's pydantic-v1
# probe (``app/__init__.py``, ``app/api/__init__.py``).
NOT_SERVED = (
    *FORBIDDEN_MODULES,
    "matplotlib",
    "apscheduler",
    "alembic",
    "app.evaluate",
    "app.worker",
    "opentelemetry.sdk",
    "rich",
    "pygments",
    "pydantic.v1",
    "sqlalchemy",  # the API reads through app.storage.sql (DB-API); SQLAlchemy is the worker's and migrations'
    "redis",  # the API talks RESP itself (app.storage.redis_client); redis-py is the worker's
)


def test_the_api_process_loads_only_what_it_serves_with(tmp_path: Path) -> None:
    """Everything ``dantaro api`` imports before it serves: the CLI, the server wiring and the built app."""
    probe = (
        "import json, sys, app.cli.main, app.server\n"
        "from app.api.app import create_app\n"
        "from app.config import Settings\n"
        f"create_app(Settings(database_url='sqlite:///{tmp_path}/api.sqlite3'))\n"
        f"print(json.dumps([m for m in {NOT_SERVED!r} if sys.modules.get(m) is not None]))\n"
    )
    env = {**os.environ, "DANTARO_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=BACKEND_DIR, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("factory", [False, True], ids=["app.main:app", "--factory app.main:create_app"])
def test_uvicorn_entry_points_build_from_the_environment(
    factory: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What uvicorn does with ``app.main:app`` and with ``--factory app.main:create_app``."""
    from fastapi.testclient import TestClient
    from uvicorn.importer import import_from_string

    with migrated_database(tmp_path) as db:
        db.publish(build_snapshot(bases=("BTC",)))
        monkeypatch.setenv("DANTARO_DATABASE_URL", db.url)
    monkeypatch.setenv("DANTARO_EXCHANGES", "binance")
    get_settings.cache_clear()
    try:
        loaded = import_from_string("app.main:create_app" if factory else "app.main:app")
        app = loaded() if factory else loaded
        with TestClient(app) as client:
            assert client.get("/health").status_code == 200
            body = client.get("/api/v1/support-levels/BTC", headers=DEV_AUTH).json()
        assert body["symbol"] == "BTC/USDT" and body["exchange"] == "binance"
    finally:
        get_settings.cache_clear()


def test_unhandled_errors_are_a_generic_500_without_internals(published: Database) -> None:
    with running_client(make_settings(published.url)) as client:
        with published.session_factory.begin() as session:
            session.execute(text(f"ALTER TABLE {AnalysisRunModel.__tablename__} RENAME TO moved_away"))
        with capture_logs() as logs:
            response = client.get("/api/v1/market-status", params={"use_cache": "false"}, headers=DEV_AUTH)
    assert response.status_code == 500
    assert response.headers["x-request-id"]  # answered inside the middleware stack
    (logged,) = [entry for entry in logs if entry["event"] == "unhandled_error"]
    assert logged["log_level"] == "error" and logged["exc_info"] is True
    assert logged["path"] == "/api/v1/market-status"
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == "internal_error"
    for leak in ("Traceback", "sqlite", "moved_away", AnalysisRunModel.__tablename__, "File "):
        assert leak not in response.text


def test_every_error_uses_the_one_shape(published: Database) -> None:
    requests = [
        ("GET", "/nope", {}, 404),
        ("POST", "/api/v1/recommendations", DEV_AUTH, 405),
        ("GET", "/api/v1/recommendations?top_n=0", DEV_AUTH, 422),
        ("GET", "/api/v1/recommendations?use_cache=maybe", DEV_AUTH, 422),
        ("GET", "/api/v1/recommendations", {}, 401),
        ("GET", "/api/v1/support-levels/ZZZ", DEV_AUTH, 404),
        ("GET", "/api/v1/support-levels/B$C", DEV_AUTH, 422),
        ("GET", "/api/v1/market-status?exchange=kraken", DEV_AUTH, 404),
        ("GET", "/api/v1/market-status?exchange=upbit", DEV_AUTH, 503),
    ]
    with running_client(make_settings(published.url)) as client:
        for method, path, headers, status in requests:
            response = client.request(method, path, headers=headers)
            assert response.status_code == status, (path, response.text)
            error = ErrorResponse.model_validate(response.json()).error
            assert error.code and error.message, path
            assert "Traceback" not in response.text


def test_openapi_documents_the_routes_and_bearer_auth(published: Database) -> None:
    with running_client(make_settings(published.url)) as client:
        spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/health", "/api/v1/recommendations", "/api/v1/market-status"} <= set(paths)
    assert any(path.startswith("/api/v1/support-levels/") for path in paths)
    recommendations = paths["/api/v1/recommendations"]["get"]
    top_n = next(p for p in recommendations["parameters"] if p["name"] == "top_n")
    assert (top_n["schema"]["minimum"], top_n["schema"]["maximum"], top_n["schema"]["default"]) == (1, 100, 50)
    assert recommendations["security"] == [{"HTTPBearer": []}]
    assert "RecommendationsResponse" in spec["components"]["schemas"]


def test_an_unhandled_error_never_reaches_the_server(database: Database) -> None:
    """The exception stops at the app: a server would otherwise log a second traceback for it."""
    from fastapi.testclient import TestClient

    from app.api.app import create_app

    with TestClient(create_app(make_settings(database.url)), raise_server_exceptions=True) as client:
        with database.session_factory.begin() as session:
            session.execute(text(f"ALTER TABLE {AnalysisRunModel.__tablename__} RENAME TO moved_away"))
        response = client.get("/api/v1/market-status", params={"use_cache": "false"}, headers=DEV_AUTH)
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"


async def test_the_lifespan_bounds_the_worker_threads_of_blocking_calls(tmp_path: Path) -> None:
    with migrated_database(tmp_path) as database:
        app = create_app(make_settings(database.url, api_threads=3))
        async with app.router.lifespan_context(app):
            assert anyio.to_thread.current_default_thread_limiter().total_tokens == 3
