"""ApiKeyRepository on SQLite and PostgreSQL: create, verify, wrong secrets, revoke, list, last-used flush."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.storage.api_keys import ApiKeyRepository, hash_secret
from app.storage.models import ApiKeyModel
from tests.support.storage import StorageBackend

CREATED_AT = datetime(2022, 10, 1, tzinfo=UTC)


def _create(backend: StorageBackend, name: str = "user-server", limit: int = 120) -> tuple[str, str]:
    with backend.session_factory.begin() as session:
        return ApiKeyRepository(session).create(name=name, rate_limit_per_min=limit, created_at=CREATED_AT)


def test_create_stores_only_the_hash_and_verifies(backend: StorageBackend) -> None:
    key_id, secret = _create(backend)
    assert secret.startswith(f"dk_{key_id}_") and len(secret) > 40
    with backend.session_factory() as session:
        stored = session.get_one(ApiKeyModel, key_id)
        assert stored.key_hash == hash_secret(secret) and secret not in stored.key_hash
        row = ApiKeyRepository(session).verify(secret)
    assert row is not None
    assert (row.key_id, row.name, row.rate_limit_per_min, row.created_at) == (key_id, "user-server", 120, CREATED_AT)


def test_wrong_and_malformed_secrets_do_not_verify(backend: StorageBackend) -> None:
    key_id, secret = _create(backend)
    other_id, other_secret = _create(backend, name="other")
    token = secret.split("_", 2)[2]
    with backend.session_factory() as session:
        keys = ApiKeyRepository(session)
        assert keys.verify(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
        assert keys.verify(f"dk_{other_id}_{token}") is None  # right token, someone else's key id
        assert keys.verify(f"dk_ffffffffffff_{token}") is None
        for malformed in ("", "dk_", f"dk_{key_id}", f"xx_{key_id}_{token}", token):
            assert keys.verify(malformed) is None
        verified = keys.verify(other_secret)
    assert verified is not None and verified.key_id == other_id


def test_revoked_keys_stop_verifying(backend: StorageBackend) -> None:
    key_id, secret = _create(backend)
    with backend.session_factory.begin() as session:
        keys = ApiKeyRepository(session)
        assert keys.revoke(key_id) is True
        assert keys.revoke(key_id) is False
        assert keys.revoke("unknown") is False
    with backend.session_factory() as session:
        keys = ApiKeyRepository(session)
        assert keys.verify(secret) is None
        (listed,) = keys.list()
    assert listed.key_id == key_id and listed.revoked_at is not None


def test_touch_last_used_moves_forward_only(backend: StorageBackend) -> None:
    first_id, _ = _create(backend, name="a")
    second_id, _ = _create(backend, name="b")
    early, late = CREATED_AT + timedelta(minutes=1), CREATED_AT + timedelta(minutes=5)
    with backend.session_factory.begin() as session:
        ApiKeyRepository(session).touch_last_used(used_at={first_id: late, second_id: early})
    with backend.session_factory.begin() as session:
        ApiKeyRepository(session).touch_last_used(used_at={first_id: early, second_id: late, "gone": late})
    with backend.session_factory() as session:
        used = {row.key_id: row.last_used_at for row in ApiKeyRepository(session).list()}
    assert used == {first_id: late, second_id: late}
