"""Shared pytest fixtures."""

from __future__ import annotations

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


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of an empty schema on the real PostgreSQL server."""
    with fresh_schema() as url:
        yield url
