"""A fresh PostgreSQL schema per test on the machine's real server, dropped afterwards.

`RELAY_TEST_POSTGRES` overrides the server (default: postgresql://postgres@127.0.0.1:5432/test).
The returned URL selects the schema through libpq's `options`, as a user would.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg

SERVER = os.environ.get("RELAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_schema() -> Iterator[str]:
    name = "relay_test_" + uuid.uuid4().hex[:12]
    try:
        conn = psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise AssertionError(
            f"PostgreSQL at {SERVER} does not answer ({type(exc).__name__}): start it, point"
            " RELAY_TEST_POSTGRES at one, or deselect these tests with -m 'not postgres'"
        ) from None
    with conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        sep = "&" if "?" in SERVER else "?"
        yield f"{SERVER}{sep}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")
