"""``dantaro keys create|list|revoke`` against a real migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from app.cli.keys import parse_rate_limit
from app.cli.main import main
from app.config import get_settings
from app.errors import UsageError
from app.storage.api_keys import ApiKeyRepository, hash_secret
from tests.support.storage import StorageBackend

SECRET = re.compile(r"^dk_([0-9a-f]+)_\S+$", re.MULTILINE)


@pytest.fixture
def configured(backend: StorageBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[StorageBackend]:
    monkeypatch.setenv("DANTARO_DATABASE_URL", backend.url)
    monkeypatch.setenv("DANTARO_LOG_FORMAT", "console")
    get_settings.cache_clear()
    yield backend
    get_settings.cache_clear()


def _create(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    assert main(["keys", "create", *args]) == 0
    out = capsys.readouterr().out
    match = SECRET.search(out)
    assert match is not None, out
    return match.group(1), match.group(0)


def test_create_prints_the_secret_once_and_stores_only_its_hash(
    configured: StorageBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    key_id, secret = _create(capsys, "--name", "exchange-bot", "--rate-limit", "10/s")
    with configured.session_factory() as session:
        repository = ApiKeyRepository(session)
        (row,) = repository.list()
        assert (row.key_id, row.name, row.rate_limit_per_min) == (key_id, "exchange-bot", 600)
        assert repository.verify(secret) == row
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and "exchange-bot" in listing and "active" in listing
    assert secret not in listing and hash_secret(secret) not in listing


def test_default_rate_limit_is_600_per_minute(configured: StorageBackend, capsys: pytest.CaptureFixture[str]) -> None:
    _create(capsys, "--name", "default")
    with configured.session_factory() as session:
        (row,) = ApiKeyRepository(session).list()
    assert row.rate_limit_per_min == 600


def test_revoke_marks_the_key_and_a_second_revoke_is_an_error(
    configured: StorageBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    key_id, secret = _create(capsys, "--name", "old")
    assert main(["keys", "revoke", key_id]) == 0
    assert "revoked" in capsys.readouterr().out
    with configured.session_factory() as session:
        assert ApiKeyRepository(session).verify(secret) is None
    assert main(["keys", "revoke", key_id]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already revoked" in err
    assert main(["keys", "list"]) == 0
    assert "revoked" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["keys", "create", "--name", "x", "--rate-limit", "abc"], "not a rate"),
        (["keys", "create", "--name", "x", "--rate-limit", "0/min"], "at least 1"),
        (["keys", "create", "--name", "   "], "--name"),
        (["keys", "revoke", "ffffffffffff"], "no API key with id"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(
    configured: StorageBackend, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and expected in captured.err and "Traceback" not in captured.err
    assert captured.out == ""
    with configured.session_factory() as session:
        assert ApiKeyRepository(session).list() == []


def test_missing_action_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["keys"])
    assert exited.value.code == 2 and "ACTION" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "per_min"), [("600", 600), ("600/min", 600), ("10/s", 600), ("3600/h", 60), ("5 / minute", 5)]
)
def test_rate_limit_forms(text: str, per_min: int) -> None:
    assert parse_rate_limit(text) == per_min


@pytest.mark.parametrize("text", ["", "-1", "1.5/min", "30/h", "10/day"])
def test_unreadable_rate_limits(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rate_limit(text)
