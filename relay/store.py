"""The durable store, in SQLite: seen event ids (dedup), the outbox of rendered messages, and
conversation state (which key is which Slack message; digest groups and their waiting items).

Everything relay accepts is written here before the sender gets its 2xx: the event id (for
dedup) and the verified event itself, in the inbox. The pipeline's router then takes inbox
events in the order they were accepted, routes and renders them, and in one transaction
replaces each with one outbox row per destination holding the rendered message. The delivery
worker claims due rows, one head row per pacing key at a time so that messages to one channel
leave in the order they were accepted.

SQLite runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives `kill -9` of
relay (the OS holds it); only a power loss of the host may lose the last commits
(`RELAY_SQLITE_SYNCHRONOUS=FULL` trades throughput for that too).

Accepted events, the hottest path in relay, are committed on the event loop's own thread
through a connection of their own: the accepts of one turn of the loop become one short
transaction of a few statements (a hop to another thread and back, and the GIL hand-offs it
brings, cost more than the write). That connection never waits for a lock: when another write
holds the database, the group is committed by the store's thread instead. A group the database
refuses for any other reason is committed again there one member at a time, so that only the
member that fails alone fails: requests share a group only because they arrived together.
Everything else runs on that one dedicated thread, which also checkpoints the WAL, so the loop
never waits on disk for longer than its own small writes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from relay.event import Event, Record, from_record, json_text, to_record
from relay.pacing import Pacer

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
    # 2: conversations (threads, updates, repeats), digests, muted rows
    """
    ALTER TABLE outbox ADD COLUMN step TEXT;
    CREATE TABLE messages (
        pace_key    TEXT NOT NULL,
        key         TEXT NOT NULL,
        channel_id  TEXT,
        ts          TEXT NOT NULL,
        order_at    REAL,
        count       INTEGER NOT NULL DEFAULT 1,
        first_at    REAL NOT NULL,
        last_at     REAL NOT NULL,
        expires_at  REAL NOT NULL,
        PRIMARY KEY (pace_key, key)
    ) WITHOUT ROWID;
    CREATE INDEX messages_expiry ON messages (expires_at);
    CREATE TABLE digest_groups (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        route         TEXT NOT NULL,
        group_key     TEXT NOT NULL,
        destination   TEXT NOT NULL,
        pace_key      TEXT NOT NULL,
        wait          REAL NOT NULL,
        interval      REAL NOT NULL,
        max_items     INTEGER NOT NULL,
        show          INTEGER NOT NULL,
        flush_at      REAL,
        last_flush_at REAL,
        UNIQUE (route, group_key, destination)
    );
    CREATE INDEX digest_due ON digest_groups (flush_at);
    CREATE TABLE digest_items (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        group_id     INTEGER NOT NULL REFERENCES digest_groups (id),
        event_source TEXT NOT NULL,
        event_id     TEXT NOT NULL,
        event_type   TEXT NOT NULL,
        template     TEXT NOT NULL,
        payload      TEXT NOT NULL,
        created_at   REAL NOT NULL
    );
    CREATE INDEX digest_items_group ON digest_items (group_id, id);
    """,
    # 3: the undelivered rows alone, so finding each key's head costs O(keys · log n)
    """
    CREATE INDEX outbox_open ON outbox (pace_key, id) WHERE status IN ('pending','inflight');
    """,
    # 4: accepted events waiting to be routed and rendered (AUTOINCREMENT: `seq` never repeats,
    # even once the inbox was empty, so it orders acceptances across restarts)
    """
    CREATE TABLE inbox (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        source      TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        type        TEXT NOT NULL,
        provider    TEXT NOT NULL,
        created     TEXT,
        text        TEXT,
        body        BLOB,
        envelope    TEXT,
        data        TEXT,
        received_at REAL NOT NULL
    );
    """,
    # 5: which process holds a claim (the same column as on PostgreSQL, where replicas release
    # the claims of a process whose heartbeat is stale; one SQLite process holds them all)
    """
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    """,
)

# The head (oldest undelivered row) of every pacing key: a skip-scan over the distinct keys of
# the partial index, then one index probe per key. A backlog of any size costs the same.
_HEADS = """
WITH RECURSIVE keys(k) AS (
    SELECT MIN(pace_key) FROM outbox INDEXED BY outbox_open
    WHERE status IN ('pending','inflight')
    UNION ALL
    SELECT (SELECT MIN(pace_key) FROM outbox INDEXED BY outbox_open
            WHERE status IN ('pending','inflight') AND pace_key > keys.k)
    FROM keys WHERE keys.k IS NOT NULL
)
SELECT {columns} FROM keys JOIN outbox o ON o.id = (
    SELECT i.id FROM outbox i INDEXED BY outbox_open
    WHERE i.pace_key = keys.k AND i.status IN ('pending','inflight') ORDER BY i.id LIMIT 1
)
WHERE o.status = 'pending'
"""


class Status(StrEnum):
    PENDING = "pending"
    INFLIGHT = "inflight"
    SENT = "sent"
    DEAD = "dead"
    MUTED = "muted"  # recorded during quiet hours, never delivered


class ClaimOutcome(StrEnum):
    """What became of an attempt to claim a key's head row for delivery."""

    CLAIMED = "claimed"  # this worker sends it now; one token of the key's budget is spent
    PACED = "paced"  # the key's budget allows nothing yet: see `Claim.wait`
    TAKEN = "taken"  # another worker holds it, or it is no longer due or no longer the head


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    wait: float = 0.0  # PACED: seconds until the key may send


class Recording(StrEnum):
    """What became of writing an attempt's outcome on its row."""

    RECORDED = "recorded"
    # the row is no longer this process's claim (another replica presumed it dead and took it
    # over, or its lease expired): left as the new holder has it
    LOST = "lost"


class Acceptance(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Received:
    """An accepted event in the inbox, waiting to be routed and rendered; `seq` orders them."""

    seq: int
    event: Event
    received_at: float


@dataclass(frozen=True, slots=True)
class InboxStats:
    waiting: int
    oldest_at: float | None


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """Where a grouped message waits for its digest, and the route's grouping settings."""

    route: str
    key: str
    wait: float
    interval: float
    max_items: int
    show: int


@dataclass(frozen=True, slots=True)
class NewMessage:
    """An outbox row to create: a rendered message for one destination.

    `step` says how it joins a conversation (see relay.conversation); `muted` records it without
    ever delivering it; `group` parks it for a digest instead of the outbox.
    """

    destination: str
    pace_key: str
    template: str
    payload: dict[str, Any]
    step: dict[str, Any] | None = None
    muted: bool = False
    group: GroupSpec | None = None


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message Slack accepted, found again by its key (thread parent, update or repeat)."""

    channel_id: str | None
    ts: str
    order_at: float | None
    count: int
    first_at: float
    last_at: float


@dataclass(frozen=True, slots=True)
class DigestItem:
    id: int
    event_source: str
    event_id: str
    event_type: str
    template: str
    payload: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True)
class DigestBatch:
    """A group whose digest is due, with the items waiting in it (oldest first)."""

    group_id: int
    route: str
    group_key: str
    destination: str
    pace_key: str
    show: int
    items: tuple[DigestItem, ...]


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
    step: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DestinationStats:
    destination: str
    pending: int
    inflight: int
    dead: int
    sent: int
    oldest_pending_at: float | None
    muted: int = 0
    digesting: int = 0


_ROW_COLUMNS = (
    "id, event_source, event_id, event_type, destination, pace_key, template, payload, status, "
    "attempts, created_at, next_attempt_at, last_reason, last_error, step"
)


_O_COLUMNS = ", ".join("o." + c.strip() for c in _ROW_COLUMNS.split(","))


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
        step=json.loads(values[14]) if values[14] else None,
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
        self._intake: list[_Intake] = []
        self._flushing = False  # a flush of `_intake` is scheduled on the loop
        self._intake_db: sqlite3.Connection | None = None  # used on the loop's thread only
        self._commits = 0
        self._background: set[asyncio.Future[Any]] = set()
        self.holder = uuid.uuid4().hex  # this process, in the claims it makes

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
        intake = sqlite3.connect(self.path, isolation_level=None)
        intake.execute(f"PRAGMA synchronous={self._synchronous}")
        intake.execute("PRAGMA busy_timeout=0")  # never wait on the loop: see _flush_intake
        intake.execute("PRAGMA wal_autocheckpoint=0")  # the store's thread checkpoints
        self._intake_db = intake

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db)
        self._db = db

    def __repr__(self) -> str:
        return f"SqliteStore('{self.path}')"

    async def migrate(self) -> int:
        """Migrations run at `open`; the schema version now in force."""
        return await self._run(migrate)

    async def close(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()

        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._intake_db is not None:
            self._intake_db.close()
            self._intake_db = None
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

    async def receive(self, event: Event, now: float) -> Acceptance:
        """Record the event id and put the event in the inbox; DUPLICATE if seen before.

        Group commit: the receives of one turn of the event loop are written by one
        transaction; each caller returns only after its transaction committed.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Acceptance] = loop.create_future()
        self._intake.append((event, to_record(event), now, waiter))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush_intake)
        return await waiter

    def _flush_intake(self) -> None:
        self._flushing = False
        batch, self._intake = self._intake, []
        try:
            if self._intake_db is None:
                raise RuntimeError("store is not open")
            results = _receive_all(self._intake_db, batch)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                self._isolate(batch, exc)
                return
            # another write holds the database: wait for it on the store's thread instead
            self._in_background(self._commit_in_thread(batch))
            return
        except Exception as exc:  # nothing of this batch was written
            self._isolate(batch, exc)
            return
        _succeed(batch, results)
        self._commits += 1
        if self._commits % 64 == 0:  # about every 64 groups, and never on this thread
            self._in_background(self._run(_checkpoint))

    def _isolate(self, batch: list[_Intake], exc: Exception) -> None:
        """A group the database refused: its requests came together by chance, so one of them
        must not fail the others. Commit each alone (rare: on the store's thread), so that only
        the one that fails alone gets the error."""
        if len(batch) == 1:
            _fail(batch, exc)
            return
        self._in_background(self._commit_each(batch))

    async def _commit_in_thread(self, batch: list[_Intake]) -> None:
        """Commit a group on the store's thread, which waits for locks; each alone if refused."""
        try:
            results = await self._run(functools.partial(_receive_all, batch=batch))
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch, exc)
                return
            await self._commit_each(batch)
            return
        _succeed(batch, results)

    async def _commit_each(self, batch: list[_Intake]) -> None:
        # in order and one after the other: an id twice in the group is still a duplicate
        for intake in batch:
            try:
                results = await self._run(functools.partial(_receive_all, batch=[intake]))
            except Exception as exc:
                _fail([intake], exc)
                continue
            _succeed([intake], results)

    def _in_background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def seen(self, source: str, event_id: str) -> bool:
        return await self._run(
            lambda db: (
                db.execute(
                    "SELECT 1 FROM events WHERE source=? AND id=?", (source, event_id)
                ).fetchone()
                is not None
            )
        )

    # ------------------------------------------------------------ routing

    async def lead_routing(self, holder: str, now: float, seconds: float) -> bool:
        """One process owns a SQLite database: it always routes."""
        del holder, now, seconds
        return True

    async def release_routing(self, holder: str) -> None:
        del holder

    async def inbox(self, limit: int) -> list[Received]:
        """The oldest events waiting to be routed, oldest first."""
        return await self._run(
            lambda db: [
                Received(row[0], from_record(row[1], row[2], row[3:10]), row[10])
                for row in db.execute(
                    f"SELECT {_INBOX_COLUMNS} FROM inbox ORDER BY seq LIMIT ?", (limit,)
                ).fetchall()
            ]
        )

    async def last_seq(self) -> int:
        """The `seq` of the newest event ever received (0 if none)."""
        return await self._run(
            lambda db: (
                db.execute("SELECT seq FROM sqlite_sequence WHERE name='inbox'").fetchone() or (0,)
            )[0]
        )

    async def enqueue(self, planned: Sequence[tuple[Received, Sequence[NewMessage]]]) -> set[int]:
        """In one transaction, replace each inbox event by its messages (created at the time the
        event was received); the `seq`s written. An event no longer in the inbox (routed
        already) is skipped."""
        rows = [(r, _message_rows(r.event, messages, r.received_at)) for r, messages in planned]
        return await self._run(functools.partial(_enqueue_all, planned=rows))

    async def inbox_stats(self) -> InboxStats:
        return await self._run(
            lambda db: InboxStats(
                *db.execute("SELECT COUNT(*), MIN(received_at) FROM inbox").fetchone()
            )
        )

    # ------------------------------------------------------------ delivery

    async def due_heads(self, now: float) -> list[OutboxRow]:
        """The oldest row of every pacing key whose head is pending and due (not yet claimed)."""
        return await self._run(
            lambda db: [
                _row(r)
                for r in db.execute(
                    _HEADS.format(columns=_O_COLUMNS) + " AND o.next_attempt_at <= ? ORDER BY o.id",
                    (now,),
                ).fetchall()
            ]
        )

    async def claim(self, row_id: int, lease_until: float) -> bool:
        """Take a pending row for one attempt; False if someone else took it first."""
        changed = await self._exec(
            "UPDATE outbox SET status='inflight', lease_until=?, claimed_by=?,"
            " attempts=attempts+1 WHERE id=? AND status='pending'",
            (lease_until, self.holder, row_id),
        )
        return changed == 1

    async def claim_head(
        self, row: OutboxRow, now: float, lease_until: float, pacer: Pacer
    ) -> Claim:
        """Claim a due head row if its key's budget allows. One process: the budget is `pacer`."""
        seconds = pacer.wait(row.pace_key, now)
        if seconds > 0:
            return Claim(ClaimOutcome.PACED, seconds)
        changed = await self._exec(
            "UPDATE outbox SET status='inflight', lease_until=?, claimed_by=?,"
            " attempts=attempts+1"
            " WHERE id=? AND status='pending' AND next_attempt_at <= ? AND NOT EXISTS"
            " (SELECT 1 FROM outbox o INDEXED BY outbox_open WHERE o.pace_key=?"
            " AND o.status IN ('pending','inflight') AND o.id < ?)",
            (lease_until, self.holder, row.id, now, row.pace_key, row.id),
        )
        if changed != 1:  # no longer due, or no longer the head of its key
            return Claim(ClaimOutcome.TAKEN)
        pacer.take(row.pace_key, now)
        return Claim(ClaimOutcome.CLAIMED)

    async def pause_key(self, key: str, now: float, seconds: float, pacer: Pacer) -> None:
        """Slack answered 429 on `key`: nothing leaves on it for `seconds`."""
        pacer.pause(key, now, seconds)

    async def beat(self) -> None:
        """One process owns a SQLite database: no other could take its claims over."""

    async def next_due_at(self) -> float | None:
        """When the earliest pending head row (of any key) becomes due."""
        return await self._run(
            lambda db: db.execute(_HEADS.format(columns="MIN(o.next_attempt_at)")).fetchone()[0]
        )

    async def mark_sent(
        self,
        row_id: int,
        channel_id: str | None,
        ts: str | None,
        now: float,
        *,
        reason: str = "ok",
    ) -> Recording:
        """The outcome of an attempt. One process holds every claim, so the row is written
        whatever its state (a lease this process let expire while its own send went on is still
        its own send: its worker sends one row of a key at a time)."""
        return _recording(
            await self._exec(
                "UPDATE outbox SET status='sent', channel_id=?, ts=?, finished_at=?,"
                " lease_until=NULL, claimed_by=NULL, last_reason=? WHERE id=?",
                (channel_id, ts, now, reason, row_id),
            )
        )

    async def mark_retry(
        self, row_id: int, next_attempt_at: float, reason: str, error: str | None
    ) -> Recording:
        return _recording(
            await self._exec(
                "UPDATE outbox SET status='pending', next_attempt_at=?, lease_until=NULL,"
                " claimed_by=NULL, last_reason=?, last_error=? WHERE id=?",
                (next_attempt_at, reason, error, row_id),
            )
        )

    async def mark_dead(self, row_id: int, reason: str, error: str | None, now: float) -> Recording:
        return _recording(
            await self._exec(
                "UPDATE outbox SET status='dead', finished_at=?, lease_until=NULL,"
                " claimed_by=NULL, last_reason=?, last_error=? WHERE id=?",
                (now, reason, error, row_id),
            )
        )

    async def release_expired_leases(self, now: float) -> int:
        """Rows claimed by a worker that died come back as pending (the at-least-once window)."""

        def txn(db: sqlite3.Connection) -> int:
            return db.execute(
                "UPDATE outbox SET status='pending', lease_until=NULL, claimed_by=NULL"
                " WHERE status='inflight' AND (lease_until IS NULL OR lease_until <= ?)",
                (now,),
            ).rowcount

        return await self._run(txn)

    async def release_orphans(self, now: float) -> int:
        """At start-up of a single process every inflight row is an orphan of the last run."""
        return await self.release_expired_leases(float("inf"))

    # ------------------------------------------------------------ conversations

    async def get_message(self, pace_key: str, key: str, now: float) -> MessageRef | None:
        """The live message registered under `key` on this channel, or None (unknown/expired)."""

        def query(db: sqlite3.Connection) -> MessageRef | None:
            found = db.execute(
                "SELECT channel_id, ts, order_at, count, first_at, last_at FROM messages"
                " WHERE pace_key=? AND key=? AND expires_at > ?",
                (pace_key, key, now),
            ).fetchone()
            return MessageRef(*found) if found else None

        return await self._run(query)

    async def put_message(
        self,
        pace_key: str,
        key: str,
        ref: MessageRef,
        expires_at: float,
    ) -> None:
        """Register (or replace) the message under `key`."""
        await self._exec(
            "INSERT INTO messages (pace_key, key, channel_id, ts, order_at, count, first_at,"
            " last_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (pace_key, key) DO"
            " UPDATE SET channel_id=excluded.channel_id, ts=excluded.ts,"
            " order_at=excluded.order_at, count=excluded.count, first_at=excluded.first_at,"
            " last_at=excluded.last_at, expires_at=excluded.expires_at",
            (
                pace_key,
                key,
                ref.channel_id,
                ref.ts,
                ref.order_at,
                ref.count,
                ref.first_at,
                ref.last_at,
                expires_at,
            ),
        )

    async def touch_message(
        self,
        pace_key: str,
        key: str,
        *,
        order_at: float | None,
        count: int | None,
        now: float,
        expires_at: float | None = None,
    ) -> None:
        """After an update: remember the newest state's time, the repeat count, the last use."""
        await self._exec(
            "UPDATE messages SET order_at=MAX(COALESCE(order_at, ?), COALESCE(?, order_at)),"
            " count=COALESCE(?, count), last_at=?, expires_at=MAX(expires_at, COALESCE(?, 0))"
            " WHERE pace_key=? AND key=?",
            (order_at, order_at, count, now, expires_at, pace_key, key),
        )

    async def forget_message(self, pace_key: str, key: str) -> None:
        await self._exec("DELETE FROM messages WHERE pace_key=? AND key=?", (pace_key, key))

    # ------------------------------------------------------------ digests

    async def due_digests(self, now: float) -> list[DigestBatch]:
        def query(db: sqlite3.Connection) -> list[DigestBatch]:
            batches = []
            groups = db.execute(
                "SELECT id, route, group_key, destination, pace_key, show FROM digest_groups"
                " WHERE flush_at IS NOT NULL AND flush_at <= ? ORDER BY flush_at, id",
                (now,),
            ).fetchall()
            for gid, route, key, destination, pace_key, show in groups:
                items = tuple(
                    DigestItem(i[0], i[1], i[2], i[3], i[4], json.loads(i[5]), i[6])
                    for i in db.execute(
                        "SELECT id, event_source, event_id, event_type, template, payload,"
                        " created_at FROM digest_items WHERE group_id=? ORDER BY id",
                        (gid,),
                    ).fetchall()
                )
                batches.append(DigestBatch(gid, route, key, destination, pace_key, show, items))
            return batches

        return await self._run(query)

    async def next_digest_at(self) -> float | None:
        return await self._run(
            lambda db: db.execute(
                "SELECT MIN(flush_at) FROM digest_groups WHERE flush_at IS NOT NULL"
            ).fetchone()[0]
        )

    async def flush_digest(
        self, batch: DigestBatch, message: NewMessage | None, now: float
    ) -> None:
        """Atomically: the digest (or the lone item's own message) into the outbox, its items
        out of the group; the group waits `interval` before the next digest if more arrived."""

        def txn(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                if message is not None and batch.items:
                    _enqueue_digest(db, batch, message, now)
                ids = [item.id for item in batch.items]
                db.execute(
                    f"DELETE FROM digest_items WHERE id IN ({','.join('?' * len(ids))})", ids
                )
                more = db.execute(
                    "SELECT COUNT(*) FROM digest_items WHERE group_id=?", (batch.group_id,)
                ).fetchone()[0]
                db.execute(
                    "UPDATE digest_groups SET last_flush_at=?,"
                    " flush_at=CASE WHEN ? > 0 THEN ? + interval ELSE NULL END WHERE id=?",
                    (now, more, now, batch.group_id),
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        await self._run(txn)

    # ------------------------------------------------------------ housekeeping

    async def prune(self, now: float, dedup_ttl: float, keep_sent: float) -> tuple[int, int]:
        """Forget event ids older than `dedup_ttl` and finished rows older than `keep_sent`."""

        def txn(db: sqlite3.Connection) -> tuple[int, int]:
            # an id is remembered while its event is undelivered, and so is every id received
            # after the oldest event still waiting to be routed
            events = db.execute(
                "DELETE FROM events WHERE received_at < ?"
                " AND received_at < COALESCE((SELECT MIN(received_at) FROM inbox), ?)"
                " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_source = events.source"
                " AND o.event_id = events.id AND o.status IN ('pending','inflight'))",
                (now - dedup_ttl, now),
            ).rowcount
            rows = db.execute(
                "DELETE FROM outbox WHERE status IN ('sent','muted') AND finished_at < ?",
                (now - keep_sent,),
            ).rowcount
            db.execute("DELETE FROM messages WHERE expires_at <= ?", (now,))
            db.execute(
                "DELETE FROM digest_groups WHERE flush_at IS NULL"
                " AND last_flush_at < ? - interval AND NOT EXISTS"
                " (SELECT 1 FROM digest_items i WHERE i.group_id = digest_groups.id)",
                (now,),
            )
            return events, rows

        return await self._run(txn)

    async def stats(self) -> list[DestinationStats]:
        def query(db: sqlite3.Connection) -> list[DestinationStats]:
            rows = db.execute(
                "SELECT destination,"
                " SUM(status='pending'), SUM(status='inflight'), SUM(status='dead'),"
                " SUM(status='sent'), MIN(CASE WHEN status IN ('pending','inflight')"
                " THEN created_at END), SUM(status='muted') FROM outbox GROUP BY destination"
            ).fetchall()
            waiting = dict(
                db.execute(
                    "SELECT g.destination, COUNT(*) FROM digest_items i JOIN digest_groups g"
                    " ON g.id = i.group_id GROUP BY g.destination"
                ).fetchall()
            )
            stats = {
                r[0]: DestinationStats(r[0], r[1], r[2], r[3], r[4], r[5], r[6], 0) for r in rows
            }
            for destination, count in waiting.items():
                base = stats.get(destination) or DestinationStats(destination, 0, 0, 0, 0, None)
                stats[destination] = replace(base, digesting=count)
            return [stats[k] for k in sorted(stats)]

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


_Intake = tuple[Event, Record, float, "asyncio.Future[Acceptance]"]
_ROWS_PER_STATEMENT = 50  # 50 inbox rows of 10 columns: well under SQLite's 32766 parameters
_INBOX_COLUMNS = (
    "seq, source, event_id, type, provider, created, text, body, envelope, data, received_at"
)
_INSERT_INBOX = (
    "INSERT INTO inbox (source, event_id, type, provider, created, text, body, envelope, data,"
    " received_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_MessageRows = tuple[list[tuple[Any, ...]], list[tuple[NewMessage, str]]]

_INSERT_OUTBOX = (
    "INSERT INTO outbox (event_source, event_id, event_type, destination, pace_key, template,"
    " payload, status, created_at, next_attempt_at, step, finished_at)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _recording(changed: int) -> Recording:
    return Recording.RECORDED if changed == 1 else Recording.LOST


def _succeed(batch: Sequence[_Intake], results: Sequence[Acceptance]) -> None:
    for (*_, waiter), result in zip(batch, results, strict=True):
        if not waiter.done():
            waiter.set_result(result)


def _fail(batch: Sequence[_Intake], exc: BaseException) -> None:
    for *_, waiter in batch:
        if not waiter.done():
            waiter.set_exception(exc)


def _checkpoint(db: sqlite3.Connection) -> None:
    """Copy the WAL into the database without blocking writers (they append meanwhile)."""
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _receive_all(db: sqlite3.Connection, batch: Sequence[_Intake]) -> list[Acceptance]:
    """One transaction for a batch of receives (an id twice in a batch: the second is a
    duplicate).

    A handful of statements per batch, whatever its size: sqlite3 gives up the GIL for every
    step of a statement and must win it back from the event loop each time, so one step per
    row would make a commit wait on the loop once per event."""
    db.execute("BEGIN IMMEDIATE")
    try:
        results = []
        for start in range(0, len(batch), _ROWS_PER_STATEMENT):
            part = batch[start : start + _ROWS_PER_STATEMENT]
            ids: dict[str, list[str]] = {}
            for event, *_ in part:
                ids.setdefault(event.source, []).append(event.id)
            seen: set[tuple[str, str]] = set()
            for source, some in ids.items():  # one source per batch, as a rule
                seen.update(
                    db.execute(
                        "SELECT source, id FROM events WHERE source=? AND id IN ("
                        + ",".join("?" * len(some))
                        + ")",
                        (source, *some),
                    ).fetchall()
                )
            events: list[Any] = []
            waiting: list[Any] = []
            for event, record, now, _ in part:
                key = (event.source, event.id)
                if key in seen:
                    results.append(Acceptance.DUPLICATE)
                    continue
                seen.add(key)
                events += (event.source, event.id, event.type, now)
                waiting += (event.source, event.id, *record, now)
                results.append(Acceptance.ACCEPTED)
            if events:
                rows = len(events) // 4
                db.execute(
                    "INSERT INTO events (source, id, type, received_at) VALUES"
                    + ",".join(["(?,?,?,?)"] * rows),
                    events,
                )
                db.execute(_INSERT_INBOX + ",(?,?,?,?,?,?,?,?,?,?)" * (rows - 1), waiting)
        db.execute("COMMIT")
        return results
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _message_rows(event: Event, messages: Sequence[NewMessage], now: float) -> _MessageRows:
    """An event's messages as outbox rows, and those parked for a digest with their payload
    (serialized here, outside the transaction, as valid text: see `relay.event.json_text`)."""
    outbox = [
        (
            event.source,
            event.id,
            event.type,
            m.destination,
            m.pace_key,
            m.template,
            json_text(m.payload),
            (Status.MUTED if m.muted else Status.PENDING).value,
            now,
            now,
            json_text(m.step) if m.step else None,
            now if m.muted else None,
        )
        for m in messages
        if m.group is None or m.muted
    ]
    grouped = [(m, json_text(m.payload)) for m in messages if m.group is not None and not m.muted]
    return outbox, grouped


def _enqueue_all(
    db: sqlite3.Connection, planned: Sequence[tuple[Received, _MessageRows]]
) -> set[int]:
    db.execute("BEGIN IMMEDIATE")
    try:
        written = set()
        for received, (outbox, grouped) in planned:
            if db.execute("DELETE FROM inbox WHERE seq=?", (received.seq,)).rowcount == 0:
                continue
            db.executemany(_INSERT_OUTBOX, outbox)
            for m, payload in grouped:
                assert m.group is not None
                _add_to_group(db, received.event, m, payload, m.group, received.received_at)
            written.add(received.seq)
        db.execute("COMMIT")
        return written
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _enqueue_digest(
    db: sqlite3.Connection, batch: DigestBatch, message: NewMessage, now: float
) -> None:
    first = batch.items[0]
    db.execute(
        "INSERT INTO outbox (event_source, event_id, event_type, destination, pace_key, template,"
        " payload, status, created_at, next_attempt_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            first.event_source,
            first.event_id,
            first.event_type if len(batch.items) == 1 else "digest",
            batch.destination,
            batch.pace_key,
            message.template,
            json_text(message.payload),
            Status.PENDING.value,
            now,
            now,
        ),
    )


def _add_to_group(
    db: sqlite3.Connection, event: Event, m: NewMessage, payload: str, group: GroupSpec, now: float
) -> None:
    """Park a message in its digest group; schedule the group's flush (Alertmanager timing:
    `wait` after the first item of a quiet group, `interval` after the last flush, at once when
    `max_items` are waiting)."""
    found = db.execute(
        "SELECT id, flush_at, last_flush_at FROM digest_groups"
        " WHERE route=? AND group_key=? AND destination=?",
        (group.route, group.key, m.destination),
    ).fetchone()
    if found is None:
        gid = db.execute(
            "INSERT INTO digest_groups (route, group_key, destination, pace_key, wait, interval,"
            " max_items, show, flush_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                group.route,
                group.key,
                m.destination,
                m.pace_key,
                group.wait,
                group.interval,
                group.max_items,
                group.show,
                now + group.wait,
            ),
        ).lastrowid
    else:
        gid, flush_at, last_flush = found
        if flush_at is None:
            recent = last_flush is not None and now < last_flush + group.interval
            flush_at = last_flush + group.interval if recent else now + group.wait
        db.execute(
            "UPDATE digest_groups SET flush_at=?, wait=?, interval=?, max_items=?, show=?,"
            " pace_key=? WHERE id=?",
            (flush_at, group.wait, group.interval, group.max_items, group.show, m.pace_key, gid),
        )
    db.execute(
        "INSERT INTO digest_items (group_id, event_source, event_id, event_type, template,"
        " payload, created_at) VALUES (?,?,?,?,?,?,?)",
        (
            gid,
            event.source,
            event.id,
            event.type,
            m.template,
            payload,
            now,
        ),
    )
    waiting = db.execute("SELECT COUNT(*) FROM digest_items WHERE group_id=?", (gid,)).fetchone()
    if waiting[0] >= group.max_items:
        db.execute("UPDATE digest_groups SET flush_at=? WHERE id=?", (now, gid))


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
