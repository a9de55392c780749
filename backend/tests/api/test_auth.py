"""Bearer-key authentication and per-key rate limits, through the app and on the verifier itself."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from app.api.app import ConfigurationError, create_app
from app.api.auth import DEVELOPMENT_PRINCIPAL, ApiPrincipal, KeyStoreUnavailableError, KeyVerifier, database_key_lookup
from app.api.ratelimit import RateLimiter
from app.config import DEVELOPMENT_KEY, get_settings
from app.storage.api_keys import ApiKeyRepository
from app.storage.sql import DatabaseError
from tests.support.api import (
    DEV_AUTH,
    Database,
    inside_one_rate_window,
    make_settings,
    running_client,
)
from tests.support.clocks import ManualClock

RECOMMENDATIONS = "/api/v1/recommendations"


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _assert_401(response_status: int, headers: dict[str, str], body: dict[str, object]) -> None:
    assert response_status == 401
    assert headers["www-authenticate"] == "Bearer"
    assert body["success"] is False
    assert isinstance(body["error"], dict) and body["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}, _bearer("dk_abc_not-the-secret")],
)
def test_missing_or_wrong_key_is_401_with_www_authenticate(published: Database, headers: dict[str, str]) -> None:
    with running_client(make_settings(published.url)) as client:
        response = client.get(RECOMMENDATIONS, headers=headers)
    _assert_401(response.status_code, dict(response.headers), response.json())


def test_every_data_route_requires_a_key(published: Database) -> None:
    with running_client(make_settings(published.url)) as client:
        statuses = {
            path: client.get(path).status_code
            for path in (RECOMMENDATIONS, "/api/v1/market-status", "/api/v1/support-levels/BTC")
        }
    assert set(statuses.values()) == {401}, statuses


def test_a_key_from_the_table_works_until_revoked(published: Database) -> None:
    _, secret = published.create_key()
    revoked_id, revoked_secret = published.create_key(name="old server")
    published.revoke_key(revoked_id)
    with running_client(make_settings(published.url, env="production", dev_key_enabled=False)) as client:
        assert client.get(RECOMMENDATIONS, headers=_bearer(secret)).status_code == 200
        refused = client.get(RECOMMENDATIONS, headers=_bearer(revoked_secret))
    _assert_401(refused.status_code, dict(refused.headers), refused.json())


def test_verification_records_last_use(published: Database) -> None:
    key_id, secret = published.create_key()
    with running_client(make_settings(published.url)) as client:
        assert client.get(RECOMMENDATIONS, headers=_bearer(secret)).status_code == 200
    with published.session_factory() as session:
        (row,) = [row for row in ApiKeyRepository(session).list() if row.key_id == key_id]
    assert row.last_used_at is not None


def test_dev_key_works_in_development_only(published: Database) -> None:
    with running_client(make_settings(published.url, env="development")) as client:
        assert client.get(RECOMMENDATIONS, headers=DEV_AUTH).status_code == 200
    with running_client(make_settings(published.url, env="production", dev_key_enabled=False)) as client:
        response = client.get(RECOMMENDATIONS, headers=DEV_AUTH)
    _assert_401(response.status_code, dict(response.headers), response.json())


def test_production_refuses_to_start_with_the_dev_key_enabled(published: Database) -> None:
    settings = make_settings(published.url, env="production", dev_key_enabled=True)
    with pytest.raises(ConfigurationError, match="DANTARO_DEV_KEY_ENABLED=false"):
        create_app(settings)


def test_app_from_the_environment_refuses_production_dev_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANTARO_ENV", "production")
    monkeypatch.setenv("DANTARO_DEV_KEY_ENABLED", "true")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="DANTARO_DEV_KEY_ENABLED=false"):
            create_app()
    finally:
        get_settings.cache_clear()


def test_dev_key_can_be_disabled_in_development(published: Database) -> None:
    with running_client(make_settings(published.url, dev_key_enabled=False)) as client:
        assert client.get(RECOMMENDATIONS, headers=DEV_AUTH).status_code == 401


def test_rate_limit_answers_429_with_retry_after(published: Database) -> None:
    _, secret = published.create_key(rate_limit_per_min=2)
    with running_client(make_settings(published.url)) as client:
        inside_one_rate_window()
        statuses = [client.get(RECOMMENDATIONS, headers=_bearer(secret)).status_code for _ in range(2)]
        limited = client.get(RECOMMENDATIONS, headers=_bearer(secret))
    assert statuses == [200, 200]
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["error"]["code"] == "rate_limited"


def test_positive_verifications_are_cached_for_the_ttl_and_revocation_follows(published: Database) -> None:
    key_id, secret = published.create_key()
    lookups: list[str] = []
    real_lookup = database_key_lookup(published.database)

    def counting_lookup(candidate: str) -> ApiPrincipal | None:
        lookups.append(candidate)
        return real_lookup(candidate)

    clock = ManualClock()
    verifier = KeyVerifier(lookup=counting_lookup, dev_key_active=False, ttl_s=1.0, clock=clock)
    first = verifier.verify(secret)
    assert first is not None and first.key_id == key_id and first.rate_limit_per_min == 600
    assert verifier.cached(secret) == first and verifier.verify(secret) == first
    assert len(lookups) == 1
    published.revoke_key(key_id)
    clock.now_s += 0.5
    assert verifier.verify(secret) == first  # still inside the TTL
    clock.now_s += 0.6
    assert verifier.cached(secret) is None
    assert verifier.verify(secret) is None
    assert len(lookups) == 2


def test_failed_verifications_are_not_cached() -> None:
    lookups: list[str] = []

    def lookup(candidate: str) -> ApiPrincipal | None:
        lookups.append(candidate)
        return None

    verifier = KeyVerifier(lookup=lookup, dev_key_active=True)
    assert verifier.verify("dk_123_wrong") is None and verifier.verify("dk_123_wrong") is None
    assert len(lookups) == 2
    assert verifier.verify(DEVELOPMENT_KEY) == DEVELOPMENT_PRINCIPAL and len(lookups) == 2
    assert verifier.verify("x" * 1000) is None and len(lookups) == 2


async def test_a_burst_of_first_requests_with_one_key_asks_the_key_store_once() -> None:
    lookups: list[str] = []
    looked_up = threading.Event()

    def lookup(candidate: str) -> ApiPrincipal | None:
        lookups.append(candidate)
        looked_up.wait(5)  # every check below is waiting by now
        return ApiPrincipal(key_id="k1", name="burst", rate_limit_per_min=None)

    verifier = KeyVerifier(lookup=lookup, dev_key_active=False, ttl_s=60.0)
    checks = [asyncio.ensure_future(verifier.check("dk_burst_secret")) for _ in range(32)]
    await asyncio.sleep(0.05)
    looked_up.set()
    principals = await asyncio.gather(*checks)
    assert {p.key_id for p in principals if p is not None} == {"k1"} and len(principals) == 32
    assert lookups == ["dk_burst_secret"]


def test_rate_limiter_windows() -> None:
    clock = ManualClock()
    clock.now_s = 120.0
    limiter = RateLimiter(clock=clock)
    assert [limiter.hit("k", limit_per_min=2) for _ in range(2)] == [None, None]
    clock.now_s = 150.0
    assert limiter.hit("k", limit_per_min=2) == 30
    assert limiter.hit("other", limit_per_min=2) is None
    clock.now_s = 180.0
    assert limiter.hit("k", limit_per_min=2) is None


class _OutageLookup:
    """A key lookup that answers from a table until ``down`` is set, then fails like an unreachable database."""

    def __init__(self, principal: ApiPrincipal) -> None:
        self.principal = principal
        self.down = False

    def __call__(self, secret: str) -> ApiPrincipal | None:
        if self.down:
            raise DatabaseError("cannot connect: connection refused")
        return self.principal if secret == "dk_known_secret" else None


@pytest.mark.parametrize(
    ("seconds_after_verification", "still_accepted"),
    [(2.0, True), (299.0, True), (301.0, False)],
)
def test_recently_verified_keys_survive_a_database_outage(
    seconds_after_verification: float, still_accepted: bool
) -> None:
    principal = ApiPrincipal(key_id="known", name="known", rate_limit_per_min=None)
    lookup = _OutageLookup(principal)
    now = [1000.0]
    verifier = KeyVerifier(lookup=lookup, dev_key_active=False, ttl_s=1.0, grace_s=300.0, clock=lambda: now[0])
    assert verifier.verify("dk_known_secret") == principal
    lookup.down = True
    now[0] += seconds_after_verification
    if still_accepted:
        assert verifier.verify("dk_known_secret") == principal
    else:
        with pytest.raises(KeyStoreUnavailableError):
            verifier.verify("dk_known_secret")
    with pytest.raises(KeyStoreUnavailableError):
        verifier.verify("dk_never_seen")


def test_an_expired_verification_is_served_once_while_one_refresh_rechecks_it() -> None:
    principal = ApiPrincipal(key_id="known", name="known", rate_limit_per_min=None)
    lookup = _OutageLookup(principal)
    now = [1000.0]
    spawned: list[Callable[[], None]] = []
    verifier = KeyVerifier(lookup=lookup, dev_key_active=False, ttl_s=0.5, clock=lambda: now[0], spawn=spawned.append)
    assert verifier.verify("dk_known_secret") == principal
    now[0] += 0.6  # expired, within one more TTL
    assert verifier.cached("dk_known_secret") is None
    assert verifier.serve_stale("dk_known_secret") == principal
    assert verifier.serve_stale("dk_known_secret") == principal
    assert len(spawned) == 1  # single flight: one refresh for both requests
    lookup.principal = None  # revoked meanwhile: the refresh drops it
    spawned.pop()()
    assert verifier.serve_stale("dk_known_secret") is None
    assert verifier.cached("dk_known_secret") is None
    assert verifier.serve_stale("dk_never_seen") is None and not spawned


def test_a_failing_background_refresh_is_logged_never_raised_and_keeps_the_grace_rule() -> None:
    principal = ApiPrincipal(key_id="known", name="known", rate_limit_per_min=None)
    lookup = _OutageLookup(principal)
    now = [1000.0]
    spawned: list[Callable[[], None]] = []
    verifier = KeyVerifier(
        lookup=lookup, dev_key_active=False, ttl_s=0.5, grace_s=0.6, clock=lambda: now[0], spawn=spawned.append
    )
    assert verifier.verify("dk_known_secret") == principal
    lookup.down = True
    now[0] = 1000.55  # expired, and the outage is within the grace
    assert verifier.serve_stale("dk_known_secret") == principal
    with capture_logs() as logs:
        spawned.pop()()
    assert [e["event"] for e in logs] == ["key_store_unavailable_grace"]
    now[0] = 1000.8  # beyond the grace, still within one more TTL
    assert verifier.serve_stale("dk_known_secret") == principal  # the key was released: a new refresh starts
    with capture_logs() as logs:
        spawned.pop()()  # the refresh's verify raises KeyStoreUnavailableError: logged, not raised
    assert [(e["event"], e["error_type"]) for e in logs] == [
        ("key_store_unavailable", "DatabaseError"),
        ("key_refresh_failed", "KeyStoreUnavailableError"),
    ]
    with pytest.raises(KeyStoreUnavailableError):
        verifier.verify("dk_known_secret")  # a request that must verify now gets the outage answer (503)
