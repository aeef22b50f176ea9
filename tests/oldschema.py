"""Test helper: a store on a database as an earlier relay left it, for the upgrade tests of a
migration: either the first `version` migrations applied (a SQLite file, or the test's
throwaway PostgreSQL schema) with the rows that relay would have written, or a database an
earlier relay really wrote, kept as a fixture."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from harness import FIXTURES

from relay.store import PostgresStore, SqliteStore, Store
from relay.store.schema import MIGRATIONS, POSTGRES, SQLITE

UPGRADE = FIXTURES / "upgrade"

# a statement with `?` placeholders, and its values
Row = tuple[str, Sequence[Any]]


def store_at(
    version: int,
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    rows: Sequence[Row] = (),
) -> Store:
    """A store (not yet opened) on a database of schema `version` holding `rows`."""
    previous = MIGRATIONS[:version]
    if backend == "sqlite":
        path = tmp_path / "relay.db"
        db = sqlite3.connect(path, isolation_level=None)
        for number, statements in enumerate(previous, start=1):
            for statement in statements:
                if (ddl := SQLITE.ddl(statement)) is not None:
                    db.execute(ddl)
            db.execute(f"PRAGMA user_version={number}")
        for sql, values in rows:
            db.execute(sql, values)
        db.close()
        return SqliteStore(path)
    url = request.getfixturevalue("pg_url")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE relay_schema (version INTEGER NOT NULL)")
        for statements in previous:
            for statement in statements:
                if (ddl := POSTGRES.ddl(statement)) is not None:
                    conn.execute(ddl.encode())
        conn.execute("INSERT INTO relay_schema (version) VALUES (%s)", (len(previous),))
        for sql, values in rows:
            conn.execute(sql.replace("?", "%s").encode(), values)
    return PostgresStore(url)


def store_from_fixture(
    name: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Store:
    """A store (not yet opened) on a database an earlier relay wrote, kept under
    `tests/fixtures/upgrade/`: `{name}.db` (SQLite) or `{name}.sql` (a pg_dump whose schema
    is `{schema}`, loaded into the test's throwaway schema)."""
    if backend == "sqlite":
        path = tmp_path / "relay.db"
        path.write_bytes((UPGRADE / f"{name}.db").read_bytes())
        return SqliteStore(path)
    url = request.getfixturevalue("pg_url")
    schema = re.search(r"search_path%3D(\w+)", url)
    assert schema is not None, url
    script = (UPGRADE / f"{name}.sql").read_text().replace("{schema}", schema.group(1))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(script.encode())
    return PostgresStore(url)
