"""The SQLite store: one process, one file, the shared logic on a thread of its own.

SQLite runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives `kill -9` of
relay (the OS holds it); only a power loss of the host may lose the last commits
(`RELAY_SQLITE_SYNCHRONOUS=FULL` trades throughput for that too).

Two connections. The store's own thread runs the operators' reads and writes (history pages,
the console, pruning, replays: any of them may take a while) and checkpoints the WAL. The path
every event takes (accepting it, routing it into the outbox, claiming and settling its
delivery, and the counts and reads those need) runs on the event loop's own thread through a
connection of its own, each transaction a few small statements: the hop to the store's thread
and back cost far more than the work. The store's thread runs Python between its statements
and has to win the GIL back from a busy event loop each time, so a transaction of 0.1 ms took
2-9 ms there and the router and the worker waited on it; inline, `bench/e2e.py` delivered 30%
more at the same CPU per event (the README's figures). That connection never blocks on a lock:
while another write holds the database, it tries again a few times over some 30 ms, the loop
turning in between, and then hands the transaction to the store's thread, which waits for it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from relay.store.db import Db
from relay.store.interface import SqlStore
from relay.store.schema import MIGRATIONS, SQLITE

T = TypeVar("T")

_CHECKPOINT_EVERY = 64  # writes on the loop's thread between two WAL checkpoints (store's thread)
# Seconds between the tries of a transaction on the loop's thread while another write holds the
# database (about 30 ms in all, then the store's thread waits for it): with a delivery process,
# SQLite's busy handler (1, 2, 5, 10 ms... between tries) made a write wait 15-20 ms on average
# for a lock held a millisecond (bench/e2e.py --delivery-process).
_BUSY_PAUSES = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016)
# Prepared statements each connection keeps: a statement over a group (`IN (?,?,...)`, rows of
# a multi-row INSERT) is one text per group size, a few hundred in all; with the driver's
# default of 128 they would push each other out and be compiled again and again.
_STATEMENTS = 1024


def sqlite_path(url: str | None, cwd: Path) -> Path:
    """`RELAY_DATABASE_URL` (`sqlite:///abs/path.db`, `sqlite:relative.db` or a plain path)."""
    if not url:
        return cwd / "data" / "relay.db"
    for prefix in ("sqlite:///", "sqlite://", "sqlite:"):
        if url.startswith(prefix):
            rest = url[len(prefix) :]
            return Path("/" + rest) if prefix == "sqlite:///" else cwd / rest
    if "://" in url:
        raise ValueError(f"RELAY_DATABASE_URL '{url.split('://')[0]}://...' is not supported")
    return cwd / url


def migrate(db: sqlite3.Connection) -> int:
    """Apply pending migrations in order; returns the schema version now in force."""
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                ddl = SQLITE.ddl(statement)
                if ddl is not None:
                    db.execute(ddl)
            db.execute(f"PRAGMA user_version={number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return max(version, len(MIGRATIONS))


def _transaction(db: sqlite3.Connection, fn: Callable[[Db], T], begin: str) -> T:
    db.execute(begin)
    try:
        result = fn(Db(db, SQLITE))
        db.execute("COMMIT")
        return result
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class SqliteStore(SqlStore):
    """relay's store in one SQLite file."""

    dialect = SQLITE

    def __init__(self, path: Path, *, synchronous: str | None = None) -> None:
        super().__init__()
        self.path = path
        self._synchronous = synchronous or os.environ.get("RELAY_SQLITE_SYNCHRONOUS", "NORMAL")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-store")
        self._db: sqlite3.Connection | None = None
        self._loop_db: sqlite3.Connection | None = None  # used on the loop's thread only
        self._commits = 0
        self._background: set[asyncio.Future[Any]] = set()

    def __repr__(self) -> str:
        return f"SqliteStore('{self.path}')"

    # ------------------------------------------------------------ connections

    async def _on_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            raise RuntimeError("store is not open")
        return fn(self._db)

    async def _run(self, fn: Callable[[Db], T], *, read_only: bool = False) -> T:
        # a writer takes the lock up front: upgrading a read lock later can fail with BUSY
        begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"
        return await self._on_thread(lambda db: _transaction(db, fn, begin))

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)
        inline = sqlite3.connect(self.path, isolation_level=None, cached_statements=_STATEMENTS)
        inline.execute(f"PRAGMA synchronous={self._synchronous}")
        inline.execute("PRAGMA busy_timeout=0")  # never wait on the loop: see _hot
        inline.execute("PRAGMA wal_autocheckpoint=0")  # the store's thread checkpoints
        inline.execute("PRAGMA foreign_keys=ON")
        self._loop_db = inline

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=_STATEMENTS,
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db)
        self._db = db

    async def migrate(self) -> int:
        """Migrations run at `open`; the schema version now in force."""
        return await self._on_thread(migrate)

    async def close(self) -> None:
        await self._drain_groups()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._loop_db is not None:
            self._loop_db.close()
            self._loop_db = None
        if self._db is not None:
            await self._on_thread(lambda db: db.close())
            self._db = None
        self._executor.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            return await self._on_thread(lambda db: db.execute("SELECT 1").fetchone() == (1,))
        except (sqlite3.Error, RuntimeError):
            return False

    # ------------------------------------------------------------ the path of every event

    async def _hot(self, fn: Callable[[Db], T], *, read_only: bool = False) -> T:
        """On the loop's thread. While another write holds the database (a delivery process's,
        or the store's thread's) try again a few times, the loop turning meanwhile: such writes
        take a millisecond or two, SQLite's own busy handler sleeps far longer between tries.
        Past that, on the store's thread, which waits for the lock."""
        if self._loop_db is None:
            raise RuntimeError("store is not open")
        begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"
        for pause in _BUSY_PAUSES:
            try:
                result = _transaction(self._loop_db, fn, begin)
                break
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
            await asyncio.sleep(pause)
        else:
            return await self._run(fn, read_only=read_only)
        if not read_only:
            self._commits += 1
            if self._commits % _CHECKPOINT_EVERY == 0:
                self._in_background(self._on_thread(_checkpoint))
        return result

    def _in_background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------ what only SQLite answers

    async def last_seq(self) -> int:
        """The `seq` of the newest event ever received (0 if none)."""
        return await self._on_thread(
            lambda db: (
                db.execute("SELECT seq FROM sqlite_sequence WHERE name='inbox'").fetchone() or (0,)
            )[0]
        )

    async def release_orphans(self, now: float) -> int:
        """At start-up of the one process every inflight row is an orphan of the last run."""
        return await self.release_expired(float("inf"))


def _checkpoint(db: sqlite3.Connection) -> None:
    """Copy the WAL into the database without blocking writers (they append meanwhile)."""
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
