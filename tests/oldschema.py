"""Test helper: a store on a database as an earlier relay left it, for the upgrade tests of a
migration: the first `version` migrations applied (a SQLite file, or the test's throwaway
PostgreSQL schema), then the rows that relay would have written."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relay.store import PostgresStore, SqliteStore, Store
from relay.store.schema import MIGRATIONS, POSTGRES, SQLITE

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
