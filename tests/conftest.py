"""Shared pytest fixtures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a store's database, once on each: a SQLite file in the test's folder, then
    an empty schema on the real PostgreSQL server."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path}/relay.db"
