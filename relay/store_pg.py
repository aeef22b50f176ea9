"""The PostgreSQL store: the same interface and semantics as `SqliteStore`, shared by replicas.

Several relay processes may use one database at once. What makes that safe:
- dedup is the `events` primary key: two replicas accepting the same id race on one INSERT and
  exactly one wins (the other answers "duplicate");
- one replica at a time routes the inbox (a lease row, `routing_lease`, renewed with every
  batch and taken over when it expires), so events are routed once and in the order they were
  accepted; the transaction that writes an event's messages deletes it from the inbox, so even
  a replica that lost its lease unknowingly cannot enqueue an event twice;
- a row is claimed with `FOR UPDATE SKIP LOCKED`, the claimer's id (`claimed_by`) and a lease
  (`lease_until`). Every replica renews a heartbeat (its `replicas` row) every second; any
  replica releases the claims of one whose heartbeat is older than `STALE_AFTER` (5 s), or
  whose lease expired, and re-sends them (the documented at-least-once window). The release
  reads heartbeats by the database's clock, holding the owner's `replicas` row, and a replica
  that cannot renew stops sending before it can look dead (relay.heartbeat has the argument
  and its one limit, a process frozen whole), so a claim is not released under a send still in
  flight. Start-up never touches the claims of a live replica, and an outcome is recorded only
  on a row its writer still holds;
- the pacing token bucket of each channel is a row of the `pace` table; a claim locks it
  (`SKIP LOCKED`: a replica already claiming on that channel is not waited for), checks that
  the row is still its channel's head and due, and spends the token in the same transaction,
  so all replicas together keep a channel within its rate and its order, no token is spent
  without a message, and a 429 pauses the channel for all;
- message keys (threads, updates, repeats) and digest groups are rows like any other; a digest
  group is flushed under a row lock, so only one replica posts it.
Migrations are versioned in `relay_schema` and applied under an advisory lock, so replicas that
start together migrate once. The connection string's password never appears in errors or logs.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import AsyncConnectionPool

from relay.event import Event, from_record, json_text, to_record
from relay.heartbeat import STALE_AFTER
from relay.pacing import Bucket, Pacer, refill, spend, wait
from relay.store import (
    Acceptance,
    Claim,
    ClaimOutcome,
    DestinationStats,
    DigestBatch,
    DigestItem,
    GroupSpec,
    InboxStats,
    MessageRef,
    NewMessage,
    OutboxRow,
    Received,
    Recording,
    Status,
    _message_rows,
    _recording,
    _row,
)

_LOCK_ID = 0x72656C6179  # "relay": the advisory lock that serializes migrations

MIGRATIONS: tuple[str, ...] = (
    # 1: seen events and the outbox
    """
    CREATE TABLE events (
        source      TEXT NOT NULL,
        id          TEXT NOT NULL,
        type        TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (source, id)
    );
    CREATE INDEX events_received ON events (received_at);
    CREATE TABLE outbox (
        id              BIGSERIAL PRIMARY KEY,
        event_source    TEXT NOT NULL,
        event_id        TEXT NOT NULL,
        event_type      TEXT NOT NULL,
        destination     TEXT NOT NULL,
        pace_key        TEXT NOT NULL,
        template        TEXT NOT NULL,
        payload         TEXT NOT NULL,
        status          TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        created_at      DOUBLE PRECISION NOT NULL,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        lease_until     DOUBLE PRECISION,
        last_reason     TEXT,
        last_error      TEXT,
        channel_id      TEXT,
        ts              TEXT,
        finished_at     DOUBLE PRECISION
    );
    CREATE INDEX outbox_head ON outbox (pace_key, status, id);
    CREATE INDEX outbox_status ON outbox (status, next_attempt_at);
    """,
    # 2: conversations, digests, muted rows, shared pacing
    """
    ALTER TABLE outbox ADD COLUMN step TEXT;
    CREATE TABLE messages (
        pace_key    TEXT NOT NULL,
        key         TEXT NOT NULL,
        channel_id  TEXT,
        ts          TEXT NOT NULL,
        order_at    DOUBLE PRECISION,
        count       INTEGER NOT NULL DEFAULT 1,
        first_at    DOUBLE PRECISION NOT NULL,
        last_at     DOUBLE PRECISION NOT NULL,
        expires_at  DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (pace_key, key)
    );
    CREATE INDEX messages_expiry ON messages (expires_at);
    CREATE TABLE digest_groups (
        id            BIGSERIAL PRIMARY KEY,
        route         TEXT NOT NULL,
        group_key     TEXT NOT NULL,
        destination   TEXT NOT NULL,
        pace_key      TEXT NOT NULL,
        wait          DOUBLE PRECISION NOT NULL,
        interval      DOUBLE PRECISION NOT NULL,
        max_items     INTEGER NOT NULL,
        show          INTEGER NOT NULL,
        flush_at      DOUBLE PRECISION,
        last_flush_at DOUBLE PRECISION,
        UNIQUE (route, group_key, destination)
    );
    CREATE INDEX digest_due ON digest_groups (flush_at);
    CREATE TABLE digest_items (
        id           BIGSERIAL PRIMARY KEY,
        group_id     BIGINT NOT NULL REFERENCES digest_groups (id),
        event_source TEXT NOT NULL,
        event_id     TEXT NOT NULL,
        event_type   TEXT NOT NULL,
        template     TEXT NOT NULL,
        payload      TEXT NOT NULL,
        created_at   DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX digest_items_group ON digest_items (group_id, id);
    CREATE TABLE pace (
        key          TEXT PRIMARY KEY,
        tokens       DOUBLE PRECISION NOT NULL,
        updated      DOUBLE PRECISION NOT NULL,
        paused_until DOUBLE PRECISION NOT NULL DEFAULT 0
    );
    """,
    # 3: the undelivered rows alone, so finding each key's head costs O(keys · log n)
    """
    CREATE INDEX outbox_open ON outbox (pace_key, id) WHERE status IN ('pending','inflight');
    """,
    # 4: accepted events waiting to be routed and rendered, and which replica routes them
    """
    CREATE TABLE inbox (
        seq         BIGSERIAL PRIMARY KEY,
        source      TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        type        TEXT NOT NULL,
        provider    TEXT NOT NULL,
        created     TEXT,
        text        TEXT,
        body        BYTEA,
        envelope    TEXT,
        data        TEXT,
        received_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE routing_lease (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        holder TEXT NOT NULL,
        until  DOUBLE PRECISION NOT NULL
    );
    """,
    # 5: which replica holds a claim, and each replica's last heartbeat (the database's clock,
    # in epoch seconds); claims of older relays (`claimed_by` NULL) are released by lease only
    """
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    CREATE TABLE replicas (
        holder    TEXT PRIMARY KEY,
        heartbeat DOUBLE PRECISION NOT NULL
    );
    """,
)

_ROW_COLUMNS = (
    "id, event_source, event_id, event_type, destination, pace_key, template, payload, status, "
    "attempts, created_at, next_attempt_at, last_reason, last_error, step"
)
# each key's oldest undelivered row: a skip-scan of the partial index (see relay/store.py)
_HEADS = """
WITH RECURSIVE keys(k) AS (
    SELECT MIN(pace_key) FROM outbox WHERE status IN ('pending','inflight')
    UNION ALL
    SELECT (SELECT MIN(pace_key) FROM outbox
            WHERE status IN ('pending','inflight') AND pace_key > keys.k)
    FROM keys WHERE keys.k IS NOT NULL
)
SELECT {columns} FROM keys JOIN outbox o ON o.id = (
    SELECT i.id FROM outbox i
    WHERE i.pace_key = keys.k AND i.status IN ('pending','inflight') ORDER BY i.id LIMIT 1
)
WHERE o.status = 'pending'
"""
_O_COLUMNS = ", ".join("o." + c.strip() for c in _ROW_COLUMNS.split(","))
# an outcome is written only on a row this replica still holds
_OWN = " WHERE id=%s AND status='inflight' AND claimed_by=%s"
# A claim goes back to pending when its lease ran out (the backstop) or when its holder is
# presumed dead: its heartbeat is older than `stale_after` by the database's clock (`now()`, the
# transaction's start: never later than the decision). The stale `replicas` rows are locked
# (FOR SHARE), which re-reads a row renewed since this statement's snapshot and keeps any renewal
# from landing until the release commits: a holder that renewed in time keeps its claims. A
# claim without a heartbeat row (`claimed_by` NULL: written by an older relay) has only its
# lease; a holder's row is pruned only once nothing is claimed in its name.
_RELEASE = """
WITH dead AS MATERIALIZED (
    SELECT holder FROM replicas
    WHERE heartbeat < EXTRACT(EPOCH FROM now()) - %(stale_after)s
      AND holder IN (SELECT claimed_by FROM outbox WHERE status='inflight')
    FOR SHARE
)
UPDATE outbox SET status='pending', lease_until=NULL, claimed_by=NULL
WHERE status='inflight'
  AND (lease_until IS NULL OR lease_until <= %(now)s OR claimed_by IN (SELECT holder FROM dead))
"""
_INSERT_OUTBOX = (
    "INSERT INTO outbox (event_source, event_id, event_type, destination, pace_key, template,"
    " payload, status, created_at, next_attempt_at, step, finished_at)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
)
# a claim takes the row only if it is still pending and due (another replica may have just sent
# it or scheduled a retry) and no older row of its key is undelivered (head-of-line order)
_CLAIM_HEAD = """
UPDATE outbox SET status='inflight', lease_until=%(lease)s, claimed_by=%(holder)s,
                  attempts=attempts+1
WHERE id = (SELECT id FROM outbox
            WHERE id=%(id)s AND status='pending' AND next_attempt_at <= %(now)s
            FOR UPDATE SKIP LOCKED)
  AND NOT EXISTS (SELECT 1 FROM outbox o
                  WHERE o.pace_key=%(key)s AND o.status IN ('pending','inflight')
                    AND o.id < %(id)s)
"""


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


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


class PostgresStore:
    """Relay's store on PostgreSQL; every method is one short transaction from a pool.

    `holder` names this process in its claims and its heartbeat; `stale_after` is how old
    another replica's heartbeat must be for its claims to be released (tests shorten it)."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        stale_after: float = STALE_AFTER,
    ) -> None:
        self.url = url
        self.holder = uuid.uuid4().hex
        self.stale_after = stale_after
        self._pool = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False, kwargs={"autocommit": False}
        )
        # the heartbeat has a connection of its own: a pool busy with intake never delays it
        self._beats = AsyncConnectionPool(
            url, min_size=1, max_size=1, open=False, kwargs={"autocommit": True}
        )

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"

    async def open(self) -> None:
        try:
            # one direct connection first: a wrong host or password fails at once, not after
            # the pool's retries
            probe = await psycopg.AsyncConnection.connect(self.url, connect_timeout=10)
            await probe.close()
            await self._pool.open(wait=True, timeout=15)
            await self._beats.open(wait=True, timeout=15)
        except Exception as exc:  # the pool's message would carry the connection string
            raise RuntimeError(
                f"cannot connect to PostgreSQL at {redact(self.url)}: {type(exc).__name__}"
            ) from None
        await self.migrate()

    async def close(self) -> None:
        await self._beats.close()
        await self._pool.close()

    async def ping(self) -> bool:
        try:
            async with self._pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            return True
        except Exception:
            return False

    async def migrate(self) -> int:
        """Apply pending migrations under an advisory lock; the schema version now in force."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            await conn.execute("CREATE TABLE IF NOT EXISTS relay_schema (version INTEGER NOT NULL)")
            cur = await conn.execute("SELECT version FROM relay_schema")
            found = await cur.fetchone()
            version = found[0] if found else 0
            if found is None:
                await conn.execute("INSERT INTO relay_schema (version) VALUES (0)")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        await conn.execute(statement)
                await conn.execute("UPDATE relay_schema SET version=%s", (number,))
        # a newer relay may have migrated further (a rolling deploy): migrations only add, so
        # this one keeps working on that schema and reports the version really in force
        return max(version, len(MIGRATIONS))

    async def _exec(self, sql: str, args: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, args)
            return cur.rowcount

    async def _all(
        self, sql: str, args: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, args)
            return await cur.fetchall()

    # ------------------------------------------------------------ intake

    async def receive(self, event: Event, now: float) -> Acceptance:
        """Record the event id and put the event in the inbox, in one statement."""
        changed = await self._exec(
            "WITH new AS (INSERT INTO events (source, id, type, received_at)"
            " VALUES (%s,%s,%s,%s) ON CONFLICT DO NOTHING RETURNING source, id)"
            " INSERT INTO inbox (source, event_id, type, provider, created, text, body,"
            " envelope, data, received_at)"
            " SELECT source, id, %s, %s, %s, %s, %s, %s, %s, %s FROM new",
            (event.source, event.id, event.type, now, *to_record(event), now),
        )
        return Acceptance.ACCEPTED if changed == 1 else Acceptance.DUPLICATE

    async def seen(self, source: str, event_id: str) -> bool:
        rows = await self._all("SELECT 1 FROM events WHERE source=%s AND id=%s", (source, event_id))
        return bool(rows)

    # ------------------------------------------------------------ routing

    async def lead_routing(self, holder: str, now: float, seconds: float) -> bool:
        """Take or renew the routing lease for `holder` until `now + seconds`; False while
        another replica holds an unexpired one."""
        rows = await self._all(
            "INSERT INTO routing_lease (id, holder, until) VALUES (1, %(holder)s, %(until)s)"
            " ON CONFLICT (id) DO UPDATE SET holder=excluded.holder, until=excluded.until"
            " WHERE routing_lease.holder = excluded.holder OR routing_lease.until <= %(now)s"
            " RETURNING holder",
            {"holder": holder, "until": now + seconds, "now": now},
        )
        return bool(rows)

    async def release_routing(self, holder: str) -> None:
        """On shutdown: let another replica (or this one, restarted) route at once."""
        await self._exec("UPDATE routing_lease SET until=0 WHERE holder=%s", (holder,))

    async def inbox(self, limit: int) -> list[Received]:
        rows = await self._all(
            "SELECT seq, source, event_id, type, provider, created, text, body, envelope, data,"
            " received_at FROM inbox ORDER BY seq LIMIT %s",
            (limit,),
        )
        return [Received(r[0], from_record(r[1], r[2], r[3:10]), r[10]) for r in rows]

    async def last_seq(self) -> int:
        rows = await self._all("SELECT last_value, is_called FROM inbox_seq_seq")
        last, called = rows[0]
        return int(last) if called else 0

    async def enqueue(self, planned: Sequence[tuple[Received, Sequence[NewMessage]]]) -> set[int]:
        if not planned:
            return set()
        async with self._pool.connection() as conn, conn.transaction():
            # deleting takes the rows: a second router (a replica that lost its lease without
            # knowing) waits here, then finds them gone and writes nothing
            cur = await conn.execute(
                "DELETE FROM inbox WHERE seq = ANY(%s) RETURNING seq",
                ([received.seq for received, _ in planned],),
            )
            taken = {row[0] for row in await cur.fetchall()}
            for received, messages in planned:
                if received.seq not in taken:
                    continue
                outbox, grouped = _message_rows(received.event, messages, received.received_at)
                if outbox:
                    async with conn.cursor() as c:
                        await c.executemany(_INSERT_OUTBOX, outbox)
                for m, payload in grouped:
                    assert m.group is not None
                    await _add_to_group(
                        conn, received.event, m, payload, m.group, received.received_at
                    )
            return taken

    async def inbox_stats(self) -> InboxStats:
        rows = await self._all("SELECT COUNT(*), MIN(received_at) FROM inbox")
        return InboxStats(*rows[0])

    # ------------------------------------------------------------ delivery

    async def due_heads(self, now: float) -> list[OutboxRow]:
        rows = await self._all(
            _HEADS.format(columns=_O_COLUMNS) + " AND o.next_attempt_at <= %s ORDER BY o.id",
            (now,),
        )
        return [_row(r) for r in rows]

    async def claim(self, row_id: int, lease_until: float) -> bool:
        changed = await self._exec(
            "UPDATE outbox SET status='inflight', lease_until=%s, claimed_by=%s,"
            " attempts=attempts+1"
            " WHERE id = (SELECT id FROM outbox WHERE id=%s AND status='pending'"
            " FOR UPDATE SKIP LOCKED)",
            (lease_until, self.holder, row_id),
        )
        return changed == 1

    async def beat(self) -> None:
        """This replica is alive now, by the database's clock: read after the call started, so
        never earlier than the moment relay.heartbeat counts its fence from."""
        async with self._beats.connection() as conn:
            await conn.execute(
                "INSERT INTO replicas (holder, heartbeat)"
                " VALUES (%s, EXTRACT(EPOCH FROM clock_timestamp()))"
                " ON CONFLICT (holder) DO UPDATE SET heartbeat=excluded.heartbeat",
                (self.holder,),
            )

    async def next_due_at(self) -> float | None:
        rows = await self._all(_HEADS.format(columns="MIN(o.next_attempt_at)"))
        return None if rows[0][0] is None else float(rows[0][0])

    async def mark_sent(
        self,
        row_id: int,
        channel_id: str | None,
        ts: str | None,
        now: float,
        *,
        reason: str = "ok",
    ) -> Recording:
        """The outcome of this replica's attempt; written only while the row is still its claim
        (if it was presumed dead and another replica took the row over, the row is theirs)."""
        return _recording(
            await self._exec(
                "UPDATE outbox SET status='sent', channel_id=%s, ts=%s, finished_at=%s,"
                " lease_until=NULL, claimed_by=NULL, last_reason=%s" + _OWN,
                (channel_id, ts, now, reason, row_id, self.holder),
            )
        )

    async def mark_retry(
        self, row_id: int, next_attempt_at: float, reason: str, error: str | None
    ) -> Recording:
        return _recording(
            await self._exec(
                "UPDATE outbox SET status='pending', next_attempt_at=%s, lease_until=NULL,"
                " claimed_by=NULL, last_reason=%s, last_error=%s" + _OWN,
                (next_attempt_at, reason, error, row_id, self.holder),
            )
        )

    async def mark_dead(self, row_id: int, reason: str, error: str | None, now: float) -> Recording:
        return _recording(
            await self._exec(
                "UPDATE outbox SET status='dead', finished_at=%s, lease_until=NULL,"
                " claimed_by=NULL, last_reason=%s, last_error=%s" + _OWN,
                (now, reason, error, row_id, self.holder),
            )
        )

    async def release_expired_leases(self, now: float) -> int:
        """Claims whose lease ran out, or whose replica's heartbeat is older than
        `stale_after`, back to pending; the rows released."""
        return await self._exec(_RELEASE, {"now": now, "stale_after": self.stale_after})

    async def release_orphans(self, now: float) -> int:
        """Start-up: the claims of live replicas stay; those of dead ones (a stale heartbeat
        or an expired lease) are orphans."""
        return await self.release_expired_leases(now)

    # ------------------------------------------------------------ shared pacing

    async def claim_head(
        self, row: OutboxRow, now: float, lease_until: float, pacer: Pacer
    ) -> Claim:
        """Claim `row` for this replica if it is still its key's due head and the key's shared
        budget allows; the token is spent only with the claim, in one transaction."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO pace (key, tokens, updated) VALUES (%s,%s,%s) ON CONFLICT DO NOTHING",
                (row.pace_key, pacer.burst, now),
            )
            cur = await conn.execute(
                "SELECT tokens, updated, paused_until FROM pace WHERE key=%s"
                " FOR UPDATE SKIP LOCKED",
                (row.pace_key,),
            )
            found = await cur.fetchone()
            if found is None:  # another replica is claiming on this key at this moment
                return Claim(ClaimOutcome.TAKEN)
            bucket = refill(Bucket(*found), now, pacer.rate, pacer.burst)
            seconds = wait(bucket, now, pacer.rate)
            if seconds > 0:
                return Claim(ClaimOutcome.PACED, seconds)
            cur = await conn.execute(
                _CLAIM_HEAD,
                {
                    "id": row.id,
                    "key": row.pace_key,
                    "now": now,
                    "lease": lease_until,
                    "holder": self.holder,
                },
            )
            if cur.rowcount != 1:
                return Claim(ClaimOutcome.TAKEN)
            bucket = spend(bucket)
            await conn.execute(
                "UPDATE pace SET tokens=%s, updated=%s WHERE key=%s",
                (bucket.tokens, bucket.updated, row.pace_key),
            )
            return Claim(ClaimOutcome.CLAIMED)

    async def pause_key(self, key: str, now: float, seconds: float, pacer: Pacer) -> None:
        """A 429 seen by one replica pauses the key for all of them."""
        pacer.pause(key, now, seconds)
        await self._exec(
            "INSERT INTO pace (key, tokens, updated, paused_until) VALUES (%s, 0, %s, %s)"
            " ON CONFLICT (key) DO UPDATE SET tokens=0, updated=%s,"
            " paused_until=GREATEST(pace.paused_until, %s)",
            (key, now, now + seconds, now, now + seconds),
        )

    # ------------------------------------------------------------ conversations

    async def get_message(self, pace_key: str, key: str, now: float) -> MessageRef | None:
        rows = await self._all(
            "SELECT channel_id, ts, order_at, count, first_at, last_at FROM messages"
            " WHERE pace_key=%s AND key=%s AND expires_at > %s",
            (pace_key, key, now),
        )
        return MessageRef(*rows[0]) if rows else None

    async def put_message(
        self, pace_key: str, key: str, ref: MessageRef, expires_at: float
    ) -> None:
        await self._exec(
            "INSERT INTO messages (pace_key, key, channel_id, ts, order_at, count, first_at,"
            " last_at, expires_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT (pace_key, key) DO UPDATE SET channel_id=excluded.channel_id,"
            " ts=excluded.ts, order_at=excluded.order_at, count=excluded.count,"
            " first_at=excluded.first_at, last_at=excluded.last_at,"
            " expires_at=excluded.expires_at",
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
        await self._exec(
            "UPDATE messages SET order_at=GREATEST(order_at, %s::double precision),"
            " count=COALESCE(%s, count), last_at=%s,"
            " expires_at=GREATEST(expires_at, COALESCE(%s::double precision, 0))"
            " WHERE pace_key=%s AND key=%s",
            (order_at, count, now, expires_at, pace_key, key),
        )

    async def forget_message(self, pace_key: str, key: str) -> None:
        await self._exec("DELETE FROM messages WHERE pace_key=%s AND key=%s", (pace_key, key))

    # ------------------------------------------------------------ digests

    async def due_digests(self, now: float) -> list[DigestBatch]:
        groups = await self._all(
            "SELECT id, route, group_key, destination, pace_key, show FROM digest_groups"
            " WHERE flush_at IS NOT NULL AND flush_at <= %s ORDER BY flush_at, id",
            (now,),
        )
        batches = []
        for gid, route, key, destination, pace_key, show in groups:
            items = tuple(
                DigestItem(i[0], i[1], i[2], i[3], i[4], json.loads(i[5]), i[6])
                for i in await self._all(
                    "SELECT id, event_source, event_id, event_type, template, payload,"
                    " created_at FROM digest_items WHERE group_id=%s ORDER BY id",
                    (gid,),
                )
            )
            batches.append(DigestBatch(gid, route, key, destination, pace_key, show, items))
        return batches

    async def next_digest_at(self) -> float | None:
        rows = await self._all("SELECT MIN(flush_at) FROM digest_groups WHERE flush_at IS NOT NULL")
        return None if rows[0][0] is None else float(rows[0][0])

    async def flush_digest(
        self, batch: DigestBatch, message: NewMessage | None, now: float
    ) -> None:
        # another replica may have posted this batch first; its transaction is the one that counts
        with contextlib.suppress(_AlreadyFlushed):
            await self._flush_digest(batch, message, now)

    async def _flush_digest(
        self, batch: DigestBatch, message: NewMessage | None, now: float
    ) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT flush_at FROM digest_groups WHERE id=%s FOR UPDATE", (batch.group_id,)
            )
            found = await cur.fetchone()
            ids = [item.id for item in batch.items]
            if ids:
                gone = await conn.execute("DELETE FROM digest_items WHERE id = ANY(%s)", (ids,))
                if found is None or gone.rowcount != len(ids):
                    # another replica flushed this batch first: undo, post nothing
                    raise _AlreadyFlushed
            if message is not None and batch.items:
                first = batch.items[0]
                await conn.execute(
                    "INSERT INTO outbox (event_source, event_id, event_type, destination,"
                    " pace_key, template, payload, status, created_at, next_attempt_at)"
                    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
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
            more = await conn.execute(
                "SELECT COUNT(*) FROM digest_items WHERE group_id=%s", (batch.group_id,)
            )
            (waiting,) = await more.fetchone()  # type: ignore[misc]
            await conn.execute(
                "UPDATE digest_groups SET last_flush_at=%s,"
                " flush_at=CASE WHEN %s > 0 THEN %s + interval ELSE NULL END WHERE id=%s",
                (now, waiting, now, batch.group_id),
            )

    # ------------------------------------------------------------ housekeeping

    async def prune(self, now: float, dedup_ttl: float, keep_sent: float) -> tuple[int, int]:
        async with self._pool.connection() as conn, conn.transaction():
            events = await conn.execute(
                "DELETE FROM events WHERE received_at < %s"
                " AND received_at < COALESCE((SELECT MIN(received_at) FROM inbox), %s)"
                " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_source = events.source"
                " AND o.event_id = events.id AND o.status IN ('pending','inflight'))",
                (now - dedup_ttl, now),
            )
            rows = await conn.execute(
                "DELETE FROM outbox WHERE status IN ('sent','muted') AND finished_at < %s",
                (now - keep_sent,),
            )
            await conn.execute("DELETE FROM messages WHERE expires_at <= %s", (now,))
            # replicas gone for longer than dedup_ttl, once nothing is claimed in their name
            await conn.execute(
                "DELETE FROM replicas WHERE heartbeat < EXTRACT(EPOCH FROM now()) - %s"
                " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.status='inflight'"
                " AND o.claimed_by = replicas.holder)",
                (dedup_ttl,),
            )
            await conn.execute(
                "DELETE FROM digest_groups g WHERE flush_at IS NULL"
                " AND last_flush_at < %s - interval AND NOT EXISTS"
                " (SELECT 1 FROM digest_items i WHERE i.group_id = g.id)",
                (now,),
            )
            return events.rowcount, rows.rowcount

    async def stats(self) -> list[DestinationStats]:
        # one snapshot for both queries: a digest moving into the outbox in between must not
        # look like nothing waiting anywhere
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur = await conn.execute(
                "SELECT destination,"
                " COUNT(*) FILTER (WHERE status='pending'),"
                " COUNT(*) FILTER (WHERE status='inflight'),"
                " COUNT(*) FILTER (WHERE status='dead'), COUNT(*) FILTER (WHERE status='sent'),"
                " MIN(created_at) FILTER (WHERE status IN ('pending','inflight')),"
                " COUNT(*) FILTER (WHERE status='muted') FROM outbox GROUP BY destination"
            )
            rows = await cur.fetchall()
            cur = await conn.execute(
                "SELECT g.destination, COUNT(*) FROM digest_items i JOIN digest_groups g"
                " ON g.id = i.group_id GROUP BY g.destination"
            )
            waiting: dict[str, int] = dict(await cur.fetchall())
        stats = {r[0]: DestinationStats(r[0], r[1], r[2], r[3], r[4], r[5], r[6], 0) for r in rows}
        for destination, count in waiting.items():
            base = stats.get(destination) or DestinationStats(destination, 0, 0, 0, 0, None)
            stats[destination] = replace(base, digesting=count)
        return [stats[k] for k in sorted(stats)]

    async def rows(self, status: Status, limit: int = 1000) -> list[OutboxRow]:
        found = await self._all(
            f"SELECT {_ROW_COLUMNS} FROM outbox WHERE status=%s ORDER BY id LIMIT %s",
            (status.value, limit),
        )
        return [_row(r) for r in found]

    async def replay_dead(self, ids: Sequence[int] | None, now: float) -> int:
        where, args = _ids_clause(ids)
        return await self._exec(
            "UPDATE outbox SET status='pending', next_attempt_at=%s, created_at=%s, attempts=0,"
            f" finished_at=NULL WHERE status='dead'{where}",
            (now, now, *args),
        )

    async def drop_dead(self, ids: Sequence[int] | None) -> int:
        where, args = _ids_clause(ids)
        return await self._exec(f"DELETE FROM outbox WHERE status='dead'{where}", tuple(args))


class _AlreadyFlushed(Exception):
    pass


def _ids_clause(ids: Sequence[int] | None) -> tuple[str, list[Any]]:
    if ids is None:
        return "", []
    return " AND id = ANY(%s)", [list(ids)]


async def _add_to_group(
    conn: psycopg.AsyncConnection[Any],
    event: Event,
    m: NewMessage,
    payload: str,
    group: GroupSpec,
    now: float,
) -> None:
    """As in the SQLite store; the group row is locked so concurrent replicas agree."""
    await conn.execute(
        "INSERT INTO digest_groups (route, group_key, destination, pace_key, wait, interval,"
        " max_items, show, flush_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
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
    )
    cur = await conn.execute(
        "SELECT id, flush_at, last_flush_at FROM digest_groups"
        " WHERE route=%s AND group_key=%s AND destination=%s FOR UPDATE",
        (group.route, group.key, m.destination),
    )
    gid, flush_at, last_flush = await cur.fetchone()  # type: ignore[misc]
    if flush_at is None:
        recent = last_flush is not None and now < last_flush + group.interval
        flush_at = last_flush + group.interval if recent else now + group.wait
    await conn.execute(
        "UPDATE digest_groups SET flush_at=%s, wait=%s, interval=%s, max_items=%s, show=%s,"
        " pace_key=%s WHERE id=%s",
        (flush_at, group.wait, group.interval, group.max_items, group.show, m.pace_key, gid),
    )
    await conn.execute(
        "INSERT INTO digest_items (group_id, event_source, event_id, event_type, template,"
        " payload, created_at) VALUES (%s,%s,%s,%s,%s,%s,%s)",
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
    cur = await conn.execute("SELECT COUNT(*) FROM digest_items WHERE group_id=%s", (gid,))
    (waiting,) = await cur.fetchone()  # type: ignore[misc]
    if waiting >= group.max_items:
        await conn.execute("UPDATE digest_groups SET flush_at=%s WHERE id=%s", (now, gid))
