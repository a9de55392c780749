"""Where the repository's files are, computed once from this file's place (``backend/tests/support/``)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BACKEND_DIR = REPO_ROOT / "backend"
APP_DIR = BACKEND_DIR / "app"
TESTS_DIR = BACKEND_DIR / "tests"
EXCHANGE_FIXTURES_DIR = TESTS_DIR / "fixtures" / "exchange"
MONITORING_DIR = REPO_ROOT / "monitoring"
DEPLOYMENT_DIR = REPO_ROOT / "deployment"
