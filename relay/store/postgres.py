"""The PostgreSQL store: the shared logic on a pool of connections, safe for replicas.

Several relay processes may use one database at once; the shared statements make that safe
(see `relay.store`): dedup by primary key, the routing lease, claims that skip rows and
pacing buckets other replicas hold and spend a channel's token in the transaction that takes
its head, digest groups flushed under a row lock. What is PostgreSQL's own lives here: the
connection pool and the threads that use it, the migrations under an advisory lock (replicas
that start together migrate once) and versioned in `relay_schema`, the inbox's sequence, and
start-up that leaves other replicas' live claims alone.

Transactions run with psycopg's blocking API on a pool of threads as large as the connection
pool, the same way the SQLite store runs them on its thread: one logic, two drivers. The
connection string's password never appears in errors or logs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool

from relay.store.db import Db
from relay.store.interface import STALE_AFTER, SqlStore
from relay.store.schema import MIGRATIONS, POSTGRES

T = TypeVar("T")

_LOCK_ID = 0x72656C6179  # "relay": the advisory lock that serializes migrations


def redact(url: str) -> str:
    """The connection string with its passwords replaced, for messages: the one in the user
    info (up to the last `@`, in case it holds an unescaped one) and `password=` or
    `sslpassword=` parameters."""
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    query = re.sub(r"(?i)(^|&)((?:ssl)?password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _migrate(conn: psycopg.Connection[Any]) -> int:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute("CREATE TABLE IF NOT EXISTS relay_schema (version INTEGER NOT NULL)")
        found = conn.execute("SELECT version FROM relay_schema").fetchone()
        version: int = found[0] if found else 0
        if found is None:
            conn.execute("INSERT INTO relay_schema (version) VALUES (0)")
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                ddl = POSTGRES.ddl(statement)
                if ddl is not None:
                    conn.execute(ddl.encode())
            conn.execute("UPDATE relay_schema SET version=%s", (number,))
    # a newer relay may have migrated further (a rolling deploy): migrations only add, so this
    # one keeps working on that schema and reports the version really in force
    return max(version, len(MIGRATIONS))


class PostgresStore(SqlStore):
    """relay's store on PostgreSQL; every operation is one short transaction from a pool."""

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        stale_after: float = STALE_AFTER,
    ) -> None:
        super().__init__(stale_after=stale_after)
        self.url = url
        self._pool = ConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False, kwargs={"autocommit": True}
        )
        self._executor = ThreadPoolExecutor(max_workers=max_size, thread_name_prefix="relay-pg")

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"

    async def _on_thread(
        self, fn: Callable[[psycopg.Connection[Any]], T], *, timeout: float | None = None
    ) -> T:
        def call() -> T:
            with self._pool.connection(timeout=timeout) as conn:
                return fn(conn)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _run(self, fn: Callable[[Db], T], *, read_only: bool = False) -> T:
        def txn(conn: psycopg.Connection[Any]) -> T:
            with conn.transaction():
                if read_only:  # one snapshot for every query of the transaction
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                return fn(Db(conn, POSTGRES))

        return await self._on_thread(txn)

    async def open(self) -> None:
        def connect() -> None:
            # one direct connection first: a wrong host or password fails at once, not after
            # the pool's retries
            psycopg.connect(self.url, connect_timeout=10).close()
            self._pool.open(wait=True, timeout=15)

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, connect)
        except Exception as exc:  # the driver's message would carry the connection string
            raise RuntimeError(
                f"cannot connect to PostgreSQL at {redact(self.url)}: {type(exc).__name__}"
            ) from None
        await self.migrate()

    async def close(self) -> None:
        await self._drain_groups()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._pool.close)
        self._executor.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            await self._on_thread(lambda conn: conn.execute("SELECT 1"), timeout=2)
            return True
        except Exception:
            return False

    async def migrate(self) -> int:
        """Apply pending migrations under an advisory lock; the schema version now in force."""
        return await self._on_thread(_migrate)

    # ------------------------------------------------------------ what only PostgreSQL answers

    async def last_seq(self) -> int:
        """The `seq` of the newest event ever received (0 if none)."""

        def read(conn: psycopg.Connection[Any]) -> int:
            last, called = conn.execute(
                "SELECT last_value, is_called FROM inbox_seq_seq"
            ).fetchone()  # type: ignore[misc]
            return int(last) if called else 0

        return await self._on_thread(read)

    async def release_orphans(self, now: float) -> int:
        """Start-up: other replicas' claims are alive; only expired leases are orphans."""
        return await self.release_expired(now)
