"""``dantaro webhooks add|list|remove|test|deliveries`` against a real migrated database (SQLite and PostgreSQL)
and a loopback receiver: the secret printed once and stored sealed, one-line errors with exit 2, test deliveries."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from app.cli.main import main
from app.config import get_settings, webhook_key_bytes
from app.domain import DeliveryState
from app.storage.publish import publish
from app.storage.webhooks import WebhookRepository
from tests.support.snapshots import MakeSnapshot
from tests.support.storage import StorageBackend
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import deliveries, new_secrets_key

SECRET = re.compile(r"^whsec_\S+$", re.MULTILINE)
CREATED = re.compile(r"^created webhook ([0-9a-f]{12}) ", re.MULTILINE)


@pytest.fixture
def configured(backend: StorageBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[StorageBackend]:
    """``dantaro`` in this process on the test database, with loopback receivers allowed and a secrets key."""
    monkeypatch.setenv("DANTARO_DATABASE_URL", backend.url)
    monkeypatch.setenv("DANTARO_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("DANTARO_WEBHOOK_ALLOW_PRIVATE_URLS", "true")
    monkeypatch.setenv("DANTARO_WEBHOOK_SECRETS_KEY", new_secrets_key())
    get_settings.cache_clear()
    yield backend
    get_settings.cache_clear()


def _add(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    assert main(["webhooks", "add", *args]) == 0
    out = capsys.readouterr().out
    secret, created = SECRET.search(out), CREATED.search(out)
    assert secret is not None and created is not None, out
    return created.group(1), secret.group(0)


def test_add_prints_the_secret_once_and_list_shows_the_filters(
    configured: StorageBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    webhook_id, secret = _add(
        capsys,
        *("--url", "http://127.0.0.1:9/hook", "--events", "run.published,level.broken"),
        *("--exchange", "Binance", "--symbols", "btc,ETH-USDT", "--horizon", "4h", "--top-n", "5"),
    )
    with configured.session_factory() as session:
        hooks = WebhookRepository(session)
        (row,) = hooks.list()
        assert hooks.signing_secret(webhook_id, key=webhook_key_bytes(get_settings())) == secret
    assert (row.webhook_id, row.events, row.exchanges) == (webhook_id, ("run.published", "level.broken"), ("binance",))
    assert (row.symbols, row.horizon, row.top_n) == (("BTC", "ETH/USDT"), "4h", 5)
    assert main(["webhooks", "list"]) == 0
    listing = capsys.readouterr().out
    assert webhook_id in listing and "BTC,ETH/USDT" in listing and "http://127.0.0.1:9/hook" in listing
    assert secret not in listing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--url", "http://127.0.0.1:9/", "--events", "run.finished"], "write a comma list of run.published"),
        (["add", "--url", "http://127.0.0.1:9/", "--events", ","], "write a comma list"),
        (["add", "--url", "http://127.0.0.1:9/", "--events", "run.published", "--exchange", "kraken"], "not served"),
        (["add", "--url", "http://127.0.0.1:9/", "--events", "run.published", "--horizon", "2w"], "use one of 1h"),
        (["add", "--url", "http://127.0.0.1:9/", "--events", "run.published", "--symbols", "BTC/"], "not a symbol"),
        (["add", "--url", "http://127.0.0.1:9/", "--events", "run.published", "--top-n", "0"], "--top-n must be 1"),
        (["add", "--url", "mailto:ops@bot.example", "--events", "run.published"], "only http"),
        (["remove", "0123456789ab"], "no webhook with id '0123456789ab'"),
        (["test", "0123456789ab"], "no webhook with id '0123456789ab'"),
        (["deliveries", "0123456789ab"], "no webhook with id '0123456789ab'"),
        (["deliveries", "--limit", "0"], "--limit must be 1 to 500"),
        (["deliveries", "--state", "lost"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    configured: StorageBackend, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    try:
        status = main(["webhooks", *args])
    except SystemExit as exited:  # argparse's own errors
        status = int(exited.code or 0)
    err = capsys.readouterr().err
    assert status == 2 and message in err, err
    assert err.startswith("dantaro webhooks") and err.strip().count("\n") == 0 and "Traceback" not in err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8080/hook", "refused: 127.0.0.1 is a loopback address"),
        ("http://localhost:8080/hook", "refused: localhost resolves to"),
        ("http://10.0.0.7/hook", "refused: 10.0.0.7 is a private address"),
    ],
)
def test_private_urls_are_refused_unless_allowed(
    configured: StorageBackend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    message: str,
) -> None:
    monkeypatch.setenv("DANTARO_WEBHOOK_ALLOW_PRIVATE_URLS", "false")
    get_settings.cache_clear()
    assert main(["webhooks", "add", "--url", url, "--events", "run.published"]) == 2
    err = capsys.readouterr().err
    assert message in err and "DANTARO_WEBHOOK_ALLOW_PRIVATE_URLS=true" in err and err.count("\n") == 1, err
    with configured.session_factory() as session:
        assert WebhookRepository(session).list() == []


def test_production_adds_webhooks_only_with_a_secrets_key(
    configured: StorageBackend, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DANTARO_ENV", "production")
    monkeypatch.setenv("DANTARO_DEV_KEY_ENABLED", "false")
    monkeypatch.setenv("DANTARO_WEBHOOK_SECRETS_KEY", "")
    get_settings.cache_clear()
    assert main(["webhooks", "add", "--url", "http://127.0.0.1:9/", "--events", "run.published"]) == 2
    assert "set DANTARO_WEBHOOK_SECRETS_KEY" in capsys.readouterr().err


def test_test_sends_one_signed_delivery_and_reports_the_answer(
    configured: StorageBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    with WebhookReceiver(statuses=[200, 500]) as receiver:
        webhook_id, secret = _add(capsys, "--url", receiver.url, "--events", "label.changed")
        assert main(["webhooks", "test", webhook_id]) == 0
        assert capsys.readouterr().out.startswith("delivered: HTTP 200 in ")
        assert main(["webhooks", "test", webhook_id]) == 1
        assert capsys.readouterr().out.startswith("not delivered: HTTP 500: ok after ")
        requests = receiver.verified(secret)
    assert [r.headers["dantaro-event"] for r in requests] == ["webhook.test", "webhook.test"]
    assert requests[0].json["data"]["webhook_id"] == webhook_id
    states = {d.delivery_id: d.state for d in deliveries(configured.session_factory)}
    assert states == {requests[0].delivery_id: DeliveryState.DELIVERED, requests[1].delivery_id: DeliveryState.FAILED}


def test_deliveries_lists_each_attempt_and_remove_deletes_them(
    configured: StorageBackend, capsys: pytest.CaptureFixture[str], make_snapshot: MakeSnapshot
) -> None:
    assert main(["webhooks", "deliveries"]) == 0
    assert capsys.readouterr().out.strip() == "no deliveries yet"
    with WebhookReceiver(statuses=[502]) as receiver:
        webhook_id, _ = _add(capsys, "--url", receiver.url, "--events", "run.published")
        publish(make_snapshot(run_id="run-1"), session_factory=configured.session_factory, cache=None)
        assert main(["webhooks", "test", webhook_id]) == 1
    capsys.readouterr()
    assert main(["webhooks", "deliveries", webhook_id, "--attempts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["CREATED", "DELIVERY", "WEBHOOK", "EVENT", "STATE", "ATTEMPTS", "NEXT", "LAST"]
    assert any("webhook.test" in line and "failed" in line and "HTTP 502" in line for line in lines)
    assert any("run.published" in line and "pending" in line for line in lines)
    assert any(line.strip().startswith("#1") and "HTTP 502: ok in" in line for line in lines)
    assert main(["webhooks", "deliveries", "--state", "pending"]) == 0
    assert "webhook.test" not in capsys.readouterr().out
    assert main(["webhooks", "remove", webhook_id]) == 0
    assert capsys.readouterr().out.startswith(f"removed webhook {webhook_id}")
    assert deliveries(configured.session_factory) == []
