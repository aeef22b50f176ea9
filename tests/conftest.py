"""Shared pytest fixtures."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from harness import RelayProcess
from pgschema import fresh_schema


@pytest.fixture
def relay_process() -> Iterator[type[RelayProcess]]:
    started: list[RelayProcess] = []

    class Tracked(RelayProcess):
        def start(self, timeout: float = 20.0) -> RelayProcess:
            started.append(self)
            return super().start(timeout)

    yield Tracked
    for proc in started:
        proc.kill()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the PostgreSQL server carries the `postgres` marker, so that
    `-m "not postgres"` leaves them out on a machine without one; CI runs them all."""
    for item in items:
        on_postgres = re.search(r"[\[-]postgres[\]-]", item.name) is not None  # a param id
        if on_postgres or "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of an empty schema on the real PostgreSQL server. A server that does not answer
    fails the test (never skips it): deselect these tests with -m "not postgres" instead."""
    with fresh_schema() as url:
        yield url
