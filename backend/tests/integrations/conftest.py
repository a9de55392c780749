"""Fixtures of the integration tests: the running API the Python client's tests share (``client_stack``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.client_stack import ClientStack, embedded_stack, postgres_stack


@pytest.fixture(
    scope="package",
    params=["embedded", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])],
)
def client_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientStack]:
    """A running ``dantaro api`` on SQLite + in-process tiers, and on PostgreSQL + Redis, shared by the client's
    test modules (tests publish new runs: ``ClientStack.current`` is the one served)."""
    directory = tmp_path_factory.mktemp(f"client-{request.param}")
    if request.param == "embedded":
        with embedded_stack(directory) as stack:
            yield stack
        return
    create_database: Callable[[], str] = request.getfixturevalue("postgres_database_factory")
    redis_url: str = request.getfixturevalue("redis_url")
    with postgres_stack(directory, database_url=create_database(), redis_url=redis_url) as stack:
        yield stack
