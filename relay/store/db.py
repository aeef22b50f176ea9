"""A connection inside a transaction, speaking one SQL dialect: what the store's logic runs on.

The store's logic (`inbox`, `outbox`, `digests`, `upkeep`) is written once for both backends as
plain functions of a `Db`. Their statements use `?` placeholders and `{token}` fragments from
the dialect (`{greatest}`, `{skip_locked}`, `{lock}`, `{open_index}`, `{epoch_now}`...),
prepared once per dialect here. The SQLite and PostgreSQL stores run the same functions on
their own connections and threads; they differ only in the dialect, how a transaction begins,
and their connection handling.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from itertools import chain
from typing import Any, Protocol

from relay.event import json_text
from relay.store.schema import Dialect


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What both drivers' connections offer: `execute(statement, parameters)`, and cursors
    (whose `executemany` runs one statement over many rows of parameters)."""

    def execute(self, statement: Any, parameters: Any = ..., /) -> Any: ...
    def cursor(self) -> Any: ...


@functools.lru_cache(maxsize=512)
def prepare(dialect: Dialect, sql: str) -> str:
    if "{" in sql:
        sql = sql.format_map(dialect.tokens())
    return sql.replace("?", "%s") if dialect.name == "postgresql" else sql


class Db:
    """A connection inside a transaction, with statements prepared for its dialect."""

    def __init__(self, conn: Connection, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect

    def run(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self.conn.execute(prepare(self.dialect, sql), args)
        return cursor

    def one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.run(sql, args).fetchone()

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return self.run(sql, args).fetchall()

    def count(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.run(sql, args).rowcount

    def among(self, values: Sequence[Any], *, negate: bool = False) -> tuple[str, list[Any]]:
        """A test of membership in `values` (all ints, or all strings), as the SQL that follows
        the column and its parameters: `IN (?,?,?)` on SQLite, and on PostgreSQL one array
        parameter, `= ANY(?)`. There a statement then reads the same whatever the number of
        values, so the server parses and plans it once per connection (psycopg prepares a
        statement run 5 times): with a `?` per value each count was a new statement, and a
        claim's took longer to plan than to run. In PostgreSQL's log of a `bench/e2e.py` run
        (32 destinations) parsing and planning went from 0.23 to 0.12 ms a message, a third and
        then a fifth of the server's time outside commits. `negate`: not in."""
        if self.dialect.name == "postgresql":
            kind = "bigint" if all(isinstance(v, int) for v in values) else "text"
            return f"{'<> ALL' if negate else '= ANY'}(?::{kind}[])", [list(values)]
        return f"{'NOT IN' if negate else 'IN'} ({marks(len(values))})", list(values)

    def rows(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        """Rows for an `INSERT INTO table (columns) ...`, as the SQL that follows and its
        parameters: `VALUES (?,?),(?,?)` on SQLite; on PostgreSQL one array parameter per column,
        of the column's type in `types` (`SELECT * FROM unnest(?::text[], ?::float8[])`): the
        same statement for any number of rows, planned once, as with `among` (a batch of intake
        or of the router varies in size), and psycopg converts it once where a statement of
        more than 50 parameters was converted at every call. unnest gives the rows in order."""
        if self.dialect.name == "postgresql":
            columns = [list(column) for column in zip(*rows, strict=True)]
            for index, kind in enumerate(types):
                if kind == "float8":  # psycopg refuses a list mixing ints and floats
                    columns[index] = [None if v is None else float(v) for v in columns[index]]
            return f"SELECT * FROM unnest({', '.join(f'?::{t}[]' for t in types)})", columns
        row = f"({marks(len(types))})"
        return "VALUES " + ",".join([row] * len(rows)), list(chain.from_iterable(rows))

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement (no RETURNING) once per row of parameters: the drivers loop in C
        (SQLite) or pipeline the rows in one round trip (PostgreSQL); the rows it changed."""
        if not rows:
            return 0
        cursor = self.conn.cursor()
        cursor.executemany(prepare(self.dialect, sql), rows)
        return int(cursor.rowcount)


def marks(count: int) -> str:
    """`?,?,?` for an IN list of `count` values."""
    return ",".join("?" * count)


def dumps(value: Any) -> str:
    """JSON for a TEXT column: valid text (a lone surrogate from event data is shown as U+FFFD,
    see `relay.event.json_text`)."""
    return json_text(value)
