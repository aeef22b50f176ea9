"""The durable store: seen event ids (dedup) and the outbox of rendered messages, in SQLite.

Everything relay accepts is written here, in one transaction, before the sender gets its 2xx:
the event id (for dedup) and one outbox row per destination holding the already rendered
message. The delivery worker then claims due rows, one head row per pacing key at a time so
that messages to one channel leave in the order they were accepted.

SQLite runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives `kill -9` of
relay (the OS holds it); only a power loss of the host may lose the last commits
(`RELAY_SQLITE_SYNCHRONOUS=FULL` trades throughput for that too). All SQL runs on one dedicated
thread, so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from relay.event import Event

T = TypeVar("T")

MIGRATIONS: tuple[str, ...] = (
    # 1: seen events and the outbox
    """
    CREATE TABLE events (
        source      TEXT NOT NULL,
        id          TEXT NOT NULL,
        type        TEXT NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (source, id)
    ) WITHOUT ROWID;
    CREATE INDEX events_received ON events (received_at);
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        event_source    TEXT NOT NULL,
        event_id        TEXT NOT NULL,
        event_type      TEXT NOT NULL,
        destination     TEXT NOT NULL,
        pace_key        TEXT NOT NULL,
        template        TEXT NOT NULL,
        payload         TEXT NOT NULL,
        status          TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        created_at      REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        lease_until     REAL,
        last_reason     TEXT,
        last_error      TEXT,
        channel_id      TEXT,
        ts              TEXT,
        finished_at     REAL
    );
    CREATE INDEX outbox_head ON outbox (pace_key, status, id);
    CREATE INDEX outbox_status ON outbox (status, next_attempt_at);
    """,
)


class Status(StrEnum):
    PENDING = "pending"
    INFLIGHT = "inflight"
    SENT = "sent"
    DEAD = "dead"


class Acceptance(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class NewMessage:
    """An outbox row to create: a rendered message for one destination."""

    destination: str
    pace_key: str
    template: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    event_source: str
    event_id: str
    event_type: str
    destination: str
    pace_key: str
    template: str
    payload: dict[str, Any]
    status: Status
    attempts: int
    created_at: float
    next_attempt_at: float
    last_reason: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DestinationStats:
    destination: str
    pending: int
    inflight: int
    dead: int
    sent: int
    oldest_pending_at: float | None


_ROW_COLUMNS = (
    "id, event_source, event_id, event_type, destination, pace_key, template, payload, status, "
    "attempts, created_at, next_attempt_at, last_reason, last_error"
)


def _row(values: Sequence[Any]) -> OutboxRow:
    return OutboxRow(
        id=values[0],
        event_source=values[1],
        event_id=values[2],
        event_type=values[3],
        destination=values[4],
        pace_key=values[5],
        template=values[6],
        payload=json.loads(values[7]),
        status=Status(values[8]),
        attempts=values[9],
        created_at=values[10],
        next_attempt_at=values[11],
        last_reason=values[12],
        last_error=values[13],
    )


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


class SqliteStore:
    """The SQLite implementation of relay's store. Methods are coroutines run on one thread."""

    def __init__(self, path: Path, *, synchronous: str | None = None) -> None:
        self.path = path
        self._synchronous = synchronous or os.environ.get("RELAY_SQLITE_SYNCHRONOUS", "NORMAL")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-store")
        self._db: sqlite3.Connection | None = None

    # ------------------------------------------------------------ plumbing

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            raise RuntimeError("store is not open")
        return fn(self._db)

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db)
        self._db = db

    async def close(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()

        if self._db is not None:
            await self._run(shut)
            self._db = None
        self._executor.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            return await self._run(lambda db: db.execute("SELECT 1").fetchone() == (1,))
        except (sqlite3.Error, RuntimeError):
            return False

    # ------------------------------------------------------------ intake

    async def accept(self, event: Event, messages: Sequence[NewMessage], now: float) -> Acceptance:
        """Record the event id and enqueue its messages atomically; DUPLICATE if seen before."""

        def txn(db: sqlite3.Connection) -> Acceptance:
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute(
                    "INSERT OR IGNORE INTO events (source, id, type, received_at) VALUES (?,?,?,?)",
                    (event.source, event.id, event.type, now),
                )
                if cur.rowcount == 0:
                    db.execute("ROLLBACK")
                    return Acceptance.DUPLICATE
                db.executemany(
                    "INSERT INTO outbox (event_source, event_id, event_type, destination, pace_key,"
                    " template, payload, status, created_at, next_attempt_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            event.source,
                            event.id,
                            event.type,
                            m.destination,
                            m.pace_key,
                            m.template,
                            json.dumps(m.payload, ensure_ascii=False),
                            Status.PENDING.value,
                            now,
                            now,
                        )
                        for m in messages
                    ],
                )
                db.execute("COMMIT")
                return Acceptance.ACCEPTED
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        return await self._run(txn)

    async def seen(self, source: str, event_id: str) -> bool:
        return await self._run(
            lambda db: (
                db.execute(
                    "SELECT 1 FROM events WHERE source=? AND id=?", (source, event_id)
                ).fetchone()
                is not None
            )
        )

    # ------------------------------------------------------------ delivery

    async def due_heads(self, now: float) -> list[OutboxRow]:
        """The oldest row of every pacing key whose head is pending and due (not yet claimed)."""
        return await self._run(
            lambda db: [
                _row(r)
                for r in db.execute(
                    f"SELECT {_ROW_COLUMNS} FROM outbox o WHERE o.status = 'pending'"
                    " AND o.next_attempt_at <= ? AND o.id = (SELECT MIN(i.id) FROM outbox i"
                    " WHERE i.pace_key = o.pace_key AND i.status IN ('pending','inflight'))"
                    " ORDER BY o.id",
                    (now,),
                ).fetchall()
            ]
        )

    async def claim(self, row_id: int, lease_until: float) -> bool:
        """Take a pending row for one attempt; False if someone else took it first."""
        changed = await self._exec(
            "UPDATE outbox SET status='inflight', lease_until=?, attempts=attempts+1"
            " WHERE id=? AND status='pending'",
            (lease_until, row_id),
        )
        return changed == 1

    async def next_due_at(self) -> float | None:
        """When the earliest pending head row (of any key) becomes due."""
        return await self._run(
            lambda db: db.execute(
                "SELECT MIN(o.next_attempt_at) FROM outbox o WHERE o.status='pending'"
                " AND o.id = (SELECT MIN(i.id) FROM outbox i WHERE i.pace_key = o.pace_key"
                " AND i.status IN ('pending','inflight'))"
            ).fetchone()[0]
        )

    async def mark_sent(
        self, row_id: int, channel_id: str | None, ts: str | None, now: float
    ) -> None:
        await self._exec(
            "UPDATE outbox SET status='sent', channel_id=?, ts=?, finished_at=?, lease_until=NULL,"
            " last_reason='ok' WHERE id=?",
            (channel_id, ts, now, row_id),
        )

    async def mark_retry(
        self, row_id: int, next_attempt_at: float, reason: str, error: str | None
    ) -> None:
        await self._exec(
            "UPDATE outbox SET status='pending', next_attempt_at=?, lease_until=NULL,"
            " last_reason=?, last_error=? WHERE id=?",
            (next_attempt_at, reason, error, row_id),
        )

    async def mark_dead(self, row_id: int, reason: str, error: str | None, now: float) -> None:
        await self._exec(
            "UPDATE outbox SET status='dead', finished_at=?, lease_until=NULL, last_reason=?,"
            " last_error=? WHERE id=?",
            (now, reason, error, row_id),
        )

    async def release_expired_leases(self, now: float) -> int:
        """Rows claimed by a worker that died come back as pending (the at-least-once window)."""

        def txn(db: sqlite3.Connection) -> int:
            return db.execute(
                "UPDATE outbox SET status='pending', lease_until=NULL"
                " WHERE status='inflight' AND (lease_until IS NULL OR lease_until <= ?)",
                (now,),
            ).rowcount

        return await self._run(txn)

    async def release_all_inflight(self) -> int:
        """At start-up of a single process every inflight row is an orphan of the last run."""
        return await self.release_expired_leases(float("inf"))

    # ------------------------------------------------------------ housekeeping

    async def prune(self, now: float, dedup_ttl: float, keep_sent: float) -> tuple[int, int]:
        """Forget event ids older than `dedup_ttl` and finished rows older than `keep_sent`."""

        def txn(db: sqlite3.Connection) -> tuple[int, int]:
            events = db.execute(
                "DELETE FROM events WHERE received_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_source = events.source"
                " AND o.event_id = events.id AND o.status IN ('pending','inflight'))",
                (now - dedup_ttl,),
            ).rowcount
            rows = db.execute(
                "DELETE FROM outbox WHERE status='sent' AND finished_at < ?", (now - keep_sent,)
            ).rowcount
            return events, rows

        return await self._run(txn)

    async def stats(self) -> list[DestinationStats]:
        def query(db: sqlite3.Connection) -> list[DestinationStats]:
            rows = db.execute(
                "SELECT destination,"
                " SUM(status='pending'), SUM(status='inflight'), SUM(status='dead'),"
                " SUM(status='sent'), MIN(CASE WHEN status IN ('pending','inflight')"
                " THEN created_at END) FROM outbox GROUP BY destination ORDER BY destination"
            ).fetchall()
            return [DestinationStats(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

        return await self._run(query)

    async def rows(self, status: Status, limit: int = 1000) -> list[OutboxRow]:
        return await self._run(
            lambda db: [
                _row(r)
                for r in db.execute(
                    f"SELECT {_ROW_COLUMNS} FROM outbox WHERE status=? ORDER BY id LIMIT ?",
                    (status.value, limit),
                ).fetchall()
            ]
        )

    async def replay_dead(self, ids: Sequence[int] | None, now: float) -> int:
        """Dead rows back to pending, due now, with a fresh age (ids=None: all of them)."""
        where, args = _ids_clause(ids)
        return await self._exec(
            "UPDATE outbox SET status='pending', next_attempt_at=?, created_at=?, attempts=0,"
            f" finished_at=NULL WHERE status='dead'{where}",
            (now, now, *args),
        )

    async def drop_dead(self, ids: Sequence[int] | None) -> int:
        where, args = _ids_clause(ids)
        return await self._exec(f"DELETE FROM outbox WHERE status='dead'{where}", tuple(args))

    async def _exec(self, sql: str, args: tuple[Any, ...]) -> int:
        return await self._run(lambda db: db.execute(sql, args).rowcount)


def _ids_clause(ids: Sequence[int] | None) -> tuple[str, list[int]]:
    if ids is None:
        return "", []
    return f" AND id IN ({','.join('?' * len(ids))})", list(ids)


def migrate(db: sqlite3.Connection) -> int:
    """Apply pending migrations in order; returns the schema version now in force."""
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
