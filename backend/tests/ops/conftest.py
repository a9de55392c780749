"""Fixtures of the operations tests: Dantaro Central deployed under a real systemd (one machine per test module)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.systemd_stack import SystemdStack, systemd_stack


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, postgres_database_factory: Callable[[], str], redis_url: str
) -> Iterator[SystemdStack]:
    """A booted Debian 12 machine with this checkout deployed by deploy.sh and running under systemd."""
    with systemd_stack(
        tmp_path_factory.mktemp("systemd"), database_url=postgres_database_factory(), redis_url=redis_url
    ) as stack:
        yield stack
