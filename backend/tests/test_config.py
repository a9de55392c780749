"""Settings: defaults are the embedded ones, env parsing, clear errors, and .env.example lists every setting."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from app.config import BUNDLED_DATA_DIR, Settings
from tests.support.paths import REPO_ROOT


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"DANTARO_{name.upper()}", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(f"DANTARO_{name}", value)
    return Settings(_env_file=None)


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch)
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.redis_url is None
    assert settings.market_source == "replay"
    assert settings.exchanges == ["binance"]
    assert settings.replay_data_dir == BUNDLED_DATA_DIR


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MARKET_SOURCE": "ccxt"}, ["upbit"]),
        ({"MARKET_SOURCE": "ccxt", "EXCHANGES": "Upbit, binance"}, ["upbit", "binance"]),
        ({"EXCHANGES": "binance"}, ["binance"]),
    ],
)
def test_exchange_defaults_follow_the_source(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: list[str]
) -> None:
    assert _settings(monkeypatch, **env).exchanges == expected


@pytest.mark.parametrize(("exchange", "quote"), [("upbit", "KRW"), ("bithumb", "KRW"), ("binance", "USDT")])
def test_quote_currency_defaults(monkeypatch: pytest.MonkeyPatch, exchange: str, quote: str) -> None:
    assert _settings(monkeypatch).quote_currency(exchange) == quote


def test_exchange_options_parse_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = '{"upbit": {"urls": {"api": {"public": "http://127.0.0.1:9999"}}, "timeout": 5000}}'
    settings = _settings(monkeypatch, EXCHANGE_OPTIONS=raw)
    assert settings.exchange_options["upbit"]["timeout"] == 5000


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EXCHANGE_OPTIONS", "{not json", "JSON object"),
        ("EXCHANGE_OPTIONS", "[1, 2]", "JSON object"),
        ("MARKET_SOURCE", "kraken", "replay"),
        ("TIMEFRAMES", "1h,banana", "unknown timeframe"),
        ("TIMEFRAMES", "4h", "must include"),
        ("WEBHOOK_SECRETS_KEY", "CHANGE_ME", "base64 of 32 random bytes"),
        ("WEBHOOK_SECRETS_KEY", "c2hvcnQ=", "base64 of 32 random bytes"),
        ("REDIS_URL", "http://:hunter2@cache:6379", "starts with redis://"),
        ("REDIS_URL", "redis://:hunter2@cache:63a9/0", "port in the Redis URL"),
        ("REDIS_URL", "redis://:hunter2@cache?socket_timeout=1", "unsupported option"),
    ],
)
def test_bad_settings_say_what_to_fix(monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as raised:
        _settings(monkeypatch, **{name: value})
    assert "hunter2" not in str(raised.value)  # no input is repeated: a URL would carry its password


def test_postgres_url_switches_database(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg2://postgres@127.0.0.1:5432/dantaro"
    assert _settings(monkeypatch, DATABASE_URL=url).resolved_database_url == url


def test_env_example_documents_every_setting() -> None:
    text = (REPO_ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*DANTARO_([A-Z0-9_]+)=", text, flags=re.MULTILINE))
    expected = {name.upper() for name in Settings.model_fields}
    assert expected - documented == set(), "add these to .env.example"
    assert documented - expected == set(), "these are not settings"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"ENV": "production"}, "DANTARO_DEV_KEY_ENABLED=false"),
        (
            {"ENV": "production", "DEV_KEY_ENABLED": "false", "DATABASE_URL": "postgresql+psycopg2://d:CHANGE_ME@h/d"},
            "DANTARO_DATABASE_URL still contains the placeholder CHANGE_ME",
        ),
        (
            {"ENV": "production", "DEV_KEY_ENABLED": "false", "REDIS_URL": "redis://:CHANGE_ME@h:6379/0"},
            "DANTARO_REDIS_URL still contains the placeholder CHANGE_ME",
        ),
    ],
)
def test_production_lists_development_defaults(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    problems = _settings(monkeypatch, **env).production_problems()
    assert len(problems) == 1 and problem in problems[0]


@pytest.mark.parametrize(
    "env",
    [
        {"ENV": "development"},
        {"ENV": "production", "DEV_KEY_ENABLED": "false", "DATABASE_URL": "postgresql+psycopg2://d:s3cret@h/d"},
    ],
)
def test_no_production_problems_when_configured(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    assert _settings(monkeypatch, **env).production_problems() == []


@pytest.mark.parametrize(
    ("env", "interval_s"),
    [({"ANALYSIS_INTERVAL_S": "30"}, 30.0), ({"MARKET_SOURCE": "ccxt", "TIMEFRAMES": "1h,1d"}, 3600.0)],
)
def test_stale_after_is_twice_the_schedule_interval(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], interval_s: float
) -> None:
    settings = _settings(monkeypatch, **env)
    assert settings.schedule_interval_s == interval_s
    assert settings.stale_after_s == 2 * interval_s
