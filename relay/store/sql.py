"""The store's logic, once for both backends: every transaction relay runs, as plain functions.

Each function takes a `Db` (a connection inside a transaction, speaking one `Dialect`) and does
one job of the store: accept a batch of events, route events into the outbox, claim the due
heads of their channels, settle delivery attempts, flush digests, prune, report. The SQLite and
PostgreSQL stores run these same functions on their own connections and threads; they differ
only in the dialect, how a transaction begins, and their connection handling.

Statements are written with `?` placeholders and `{token}` fragments from the dialect
(`{greatest}`, `{skip_locked}`, `{lock}`, `{open_index}`), prepared once per dialect.

Safety across PostgreSQL replicas comes from the statements themselves: dedup is the `events`
primary key (`ON CONFLICT DO NOTHING`); a claim takes a row only while it is still pending, due
and its channel's head, and spends the channel's pacing token (a `pace` row taken with
`SKIP LOCKED`) in the same transaction; the transaction that enqueues an event deletes it from
the inbox, so it is enqueued once; a digest group is flushed under its row lock. On SQLite one
writer at a time gives the same guarantees.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Protocol

from relay.conversation.grouping import GroupTimes, flush_at_after_flush, flush_at_on_add
from relay.delivery.pacing import Bucket, refill, spend, wait
from relay.event import Event, Record, from_record, json_text
from relay.records import (
    Acceptance,
    Claim,
    ClaimRound,
    DestinationStats,
    DigestBatch,
    DigestItem,
    Forget,
    InboxStats,
    Message,
    MessageRef,
    NewMessage,
    OutboxRow,
    Received,
    Recording,
    Remember,
    Routed,
    Settlement,
    Status,
    Step,
    Touch,
)
from relay.store.schema import Dialect


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What both drivers' connections offer: `execute(statement, parameters)`."""

    def execute(self, statement: Any, parameters: Any = ..., /) -> Any: ...


@functools.lru_cache(maxsize=512)
def _prepare(dialect: Dialect, sql: str) -> str:
    if "{" in sql:
        sql = sql.format_map(dialect.tokens())
    return sql.replace("?", "%s") if dialect.name == "postgresql" else sql


class Db:
    """A connection inside a transaction, with statements prepared for its dialect."""

    def __init__(self, conn: Connection, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect

    def run(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self.conn.execute(_prepare(self.dialect, sql), args)
        return cursor

    def one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.run(sql, args).fetchone()

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return self.run(sql, args).fetchall()

    def count(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.run(sql, args).rowcount


def marks(count: int) -> str:
    """`?,?,?` for an IN list of `count` values."""
    return ",".join("?" * count)


def dumps(value: Any) -> str:
    """JSON for a TEXT column: valid text (a lone surrogate from event data is shown as U+FFFD,
    see `relay.event.json_text`)."""
    return json_text(value)


# ------------------------------------------------------------------ intake

# How many events one statement writes: 50 inbox rows of 10 values stay far below both
# databases' parameter limits, and a few statements per batch keep a commit short.
ROWS_PER_STATEMENT = 50

Incoming = tuple[Event, Record, float]

_INBOX_ROW = "(?,?,?,?,?,?,?,?,?,?)"
_INSERT_INBOX = (
    "INSERT INTO inbox (source, event_id, type, provider, created, text, body, envelope, data,"
    " received_at) VALUES "
)
INBOX_COLUMNS = (
    "seq, source, event_id, type, provider, created, text, body, envelope, data, received_at"
)


def receive_all(db: Db, batch: Sequence[Incoming]) -> list[Acceptance]:
    """Record the ids of a batch of events and put the new ones in the inbox; an id seen
    before (or twice in the batch) is a duplicate. A handful of statements whatever the size."""
    results: list[Acceptance] = []
    for start in range(0, len(batch), ROWS_PER_STATEMENT):
        part = batch[start : start + ROWS_PER_STATEMENT]
        fresh: dict[tuple[str, str], Incoming] = {}
        for item in part:
            fresh.setdefault((item[0].source, item[0].id), item)
        values: list[Any] = []
        for event, _record, now in fresh.values():
            values += (event.source, event.id, event.type, now)
        taken = {
            (row[0], row[1])
            for row in db.all(
                "INSERT INTO events (source, id, type, received_at) VALUES "
                + ",".join(["(?,?,?,?)"] * len(fresh))
                + " ON CONFLICT DO NOTHING RETURNING source, id",
                values,
            )
        }
        waiting: list[Any] = []
        for key, (event, record, now) in fresh.items():
            if key in taken:
                waiting += (event.source, event.id, *record, now)
        if waiting:
            db.run(_INSERT_INBOX + ",".join([_INBOX_ROW] * (len(waiting) // 10)), waiting)
        for event, _record, _now in part:
            key = (event.source, event.id)
            accepted = key in taken and fresh.get(key) is not None
            if accepted:
                del fresh[key]  # a second occurrence in the batch is a duplicate
            results.append(Acceptance.ACCEPTED if accepted else Acceptance.DUPLICATE)
    return results


def seen(db: Db, source: str, event_id: str) -> bool:
    return db.one("SELECT 1 FROM events WHERE source=? AND id=?", (source, event_id)) is not None


# ------------------------------------------------------------------ routing


def lead_routing(db: Db, holder: str, now: float, seconds: float) -> bool:
    """Take or renew the routing lease for `holder` until `now + seconds`; False while another
    process holds an unexpired one."""
    found = db.all(
        "INSERT INTO routing_lease (id, holder, until) VALUES (1, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET holder=excluded.holder, until=excluded.until"
        " WHERE routing_lease.holder = excluded.holder OR routing_lease.until <= ?"
        " RETURNING holder",
        (holder, now + seconds, now),
    )
    return bool(found)


def release_routing(db: Db, holder: str) -> None:
    db.run("UPDATE routing_lease SET until=0 WHERE holder=?", (holder,))


def inbox(db: Db, limit: int) -> list[Received]:
    """The oldest events waiting to be routed, oldest first."""
    return [
        Received(row[0], from_record(row[1], row[2], row[3:10]), row[10])
        for row in db.all(f"SELECT {INBOX_COLUMNS} FROM inbox ORDER BY seq LIMIT ?", (limit,))
    ]


def inbox_stats(db: Db) -> InboxStats:
    waiting, oldest = db.one("SELECT COUNT(*), MIN(received_at) FROM inbox")
    return InboxStats(waiting, oldest)


_INSERT_OUTBOX = (
    "INSERT INTO outbox (event_source, event_id, event_type, destination, pace_key, template,"
    " payload, status, created_at, next_attempt_at, step, finished_at)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)


def enqueue(db: Db, planned: Sequence[Routed]) -> set[int]:
    """Replace each inbox event by its messages (created when the event was received), in the
    caller's transaction; the `seq`s written. An event no longer in the inbox (routed already,
    by another replica say) is skipped: deleting it is what takes it."""
    if not planned:
        return set()
    seqs = [routed.received.seq for routed in planned]
    taken = {
        row[0]
        for row in db.all(
            f"DELETE FROM inbox WHERE seq IN ({marks(len(seqs))}) RETURNING seq", seqs
        )
    }
    for routed in planned:
        received = routed.received
        if received.seq not in taken:
            continue
        event, now = received.event, received.received_at
        for m in routed.messages:
            payload = dumps(m.message.to_json())
            if m.group is not None and not m.muted:
                _add_to_group(db, event, m, payload, now)
                continue
            db.run(
                _INSERT_OUTBOX,
                (
                    event.source,
                    event.id,
                    event.type,
                    m.destination,
                    m.pace_key,
                    m.template,
                    payload,
                    (Status.MUTED if m.muted else Status.PENDING).value,
                    now,
                    now,
                    dumps(m.step.to_json()) if m.step is not None and m.step.joins else None,
                    now if m.muted else None,
                ),
            )
    return taken


def _add_to_group(db: Db, event: Event, m: NewMessage, payload: str, now: float) -> None:
    """Park a message in its digest group and schedule the group's flush; the group row is
    locked so that concurrent replicas agree on it."""
    spec = m.group
    assert spec is not None
    db.run(
        "INSERT INTO digest_groups (route, group_key, destination, pace_key, wait, interval,"
        " max_items, show) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
        (spec.route, spec.key, m.destination, m.pace_key, spec.wait, spec.interval,
         spec.max_items, spec.show),
    )  # fmt: skip
    gid, flush_at, last_flush = db.one(
        "SELECT id, flush_at, last_flush_at FROM digest_groups"
        " WHERE route=? AND group_key=? AND destination=?{lock}",
        (spec.route, spec.key, m.destination),
    )
    db.run(
        "INSERT INTO digest_items (group_id, event_source, event_id, event_type, template,"
        " payload, created_at) VALUES (?,?,?,?,?,?,?)",
        (gid, event.source, event.id, event.type, m.template, payload, now),
    )
    (waiting,) = db.one("SELECT COUNT(*) FROM digest_items WHERE group_id=?", (gid,))
    times = None if flush_at is None and last_flush is None else GroupTimes(flush_at, last_flush)
    db.run(
        "UPDATE digest_groups SET flush_at=?, wait=?, interval=?, max_items=?, show=?,"
        " pace_key=? WHERE id=?",
        (flush_at_on_add(times, spec, waiting, now), spec.wait, spec.interval, spec.max_items,
         spec.show, m.pace_key, gid),
    )  # fmt: skip


# ------------------------------------------------------------------ delivery

ROW_COLUMNS = (
    "id, event_source, event_id, event_type, destination, pace_key, template, payload, status, "
    "attempts, created_at, next_attempt_at, last_reason, last_error, step"
)
_O_COLUMNS = ", ".join("o." + c.strip() for c in ROW_COLUMNS.split(","))

# The head (oldest undelivered row) of every pacing key: a skip-scan over the distinct keys of
# the index of undelivered rows, then one index probe per key. A backlog of any size costs the
# same.
_HEADS = """
WITH RECURSIVE keys(k) AS (
    SELECT MIN(pace_key) FROM outbox{open_index} WHERE status IN ('pending','inflight')
    UNION ALL
    SELECT (SELECT MIN(pace_key) FROM outbox{open_index}
            WHERE status IN ('pending','inflight') AND pace_key > keys.k)
    FROM keys WHERE keys.k IS NOT NULL
)
SELECT <columns> FROM keys JOIN outbox o ON o.id = (
    SELECT i.id FROM outbox i{open_index}
    WHERE i.pace_key = keys.k AND i.status IN ('pending','inflight') ORDER BY i.id LIMIT 1
)
WHERE o.status = 'pending'
"""

# A claim takes the row only if it is still pending and due (another replica may have just sent
# it or scheduled a retry) and no older row of its key is undelivered (head-of-line order).
_CLAIM = (
    "UPDATE outbox SET status='inflight', lease_until=?, claimed_by=?, attempts=attempts+1"
    " WHERE id = (SELECT id FROM outbox WHERE id=? AND status='pending' AND next_attempt_at <= ?"
    "{skip_locked})"
    " AND NOT EXISTS (SELECT 1 FROM outbox o{open_index} WHERE o.pace_key=?"
    " AND o.status IN ('pending','inflight') AND o.id < ?)"
)


def row_of(values: Sequence[Any]) -> OutboxRow:
    return OutboxRow(
        id=values[0],
        event_source=values[1],
        event_id=values[2],
        event_type=values[3],
        destination=values[4],
        pace_key=values[5],
        template=values[6],
        message=Message.from_json(json.loads(values[7])),
        status=Status(values[8]),
        attempts=values[9],
        created_at=values[10],
        next_attempt_at=values[11],
        last_reason=values[12],
        last_error=values[13],
        step=Step.from_json(json.loads(values[14])) if values[14] else None,
    )


def due_heads(db: Db, now: float, limit: int) -> list[OutboxRow]:
    """The oldest row of every pacing key whose head is pending and due, oldest first."""
    return [
        row_of(r)
        for r in db.all(
            _HEADS.replace("<columns>", _O_COLUMNS)
            + " AND o.next_attempt_at <= ? ORDER BY o.id LIMIT ?",
            (now, limit),
        )
    ]


def next_due_at(db: Db) -> float | None:
    """When the earliest pending head row (of any key) becomes due."""
    (due,) = db.one(_HEADS.replace("<columns>", "MIN(o.next_attempt_at)"))
    return None if due is None else float(due)


def _bucket(db: Db, key: str, now: float, burst: float) -> Bucket | None:
    """The key's pacing bucket, taken for this transaction; None while another replica is
    claiming on the key (it is skipped, not waited for)."""
    db.run(
        "INSERT INTO pace (key, tokens, updated) VALUES (?,?,?) ON CONFLICT DO NOTHING",
        (key, burst, now),
    )
    found = db.one(
        "SELECT tokens, updated, paused_until FROM pace WHERE key=?{skip_locked}", (key,)
    )
    return None if found is None else Bucket(*found)


def claim(
    db: Db,
    holder: str,
    now: float,
    lease_until: float,
    rate: float,
    burst: float,
    limit: int,
    busy: Collection[str] = (),
) -> ClaimRound:
    """Claim for `holder` the due heads of up to `limit` keys whose pacing allows a message
    now, spending one token of each; with each row, the conversation messages its step may
    need. Keys in `busy` are skipped: the worker still sends on them (a claim it made whose
    lease ran out meanwhile would otherwise be taken again under its own send)."""
    claimed: list[Claim] = []
    waits: list[float] = []
    for row in due_heads(db, now, limit + len(busy)):
        if row.pace_key in busy:
            continue
        if len(claimed) == limit:
            break
        found = _bucket(db, row.pace_key, now, burst)
        if found is None:
            continue
        bucket = refill(found, now, rate, burst)
        seconds = wait(bucket, now, rate)
        if seconds > 0:
            waits.append(seconds)
            continue
        if db.count(_CLAIM, (lease_until, holder, row.id, now, row.pace_key, row.id)) != 1:
            continue  # no longer due, or no longer the head of its key
        bucket = spend(bucket)
        db.run(
            "UPDATE pace SET tokens=?, updated=? WHERE key=?",
            (bucket.tokens, bucket.updated, row.pace_key),
        )
        inflight = OutboxRow(**{**_fields(row), "status": Status.INFLIGHT,
                                "attempts": row.attempts + 1})  # fmt: skip
        claimed.append(Claim(inflight, _refs(db, row, now)))
    return ClaimRound(tuple(claimed), min(waits) if waits else None)


def _fields(row: OutboxRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in OutboxRow.__dataclass_fields__}


def _refs(db: Db, row: OutboxRow, now: float) -> dict[str, MessageRef]:
    keys = row.step.keys() if row.step is not None else ()
    if not keys:
        return {}
    return {
        found[0]: MessageRef(*found[1:])
        for found in db.all(
            "SELECT key, channel_id, ts, order_at, count, first_at, last_at FROM messages"
            f" WHERE pace_key=? AND key IN ({marks(len(keys))}) AND expires_at > ?",
            (row.pace_key, *keys, now),
        )
    }


# an outcome is written only on a row its writer still holds
_OWN = " WHERE id=? AND status='inflight' AND claimed_by=?"


def settle(db: Db, holder: str, settlements: Iterable[Settlement]) -> list[Recording]:
    """Record what `holder`'s delivery attempts came to, and what their conversations now
    remember. A row `holder` no longer holds (another replica presumed it dead and took it
    over, or its lease ran out) is left as it is, and so is its conversation: `LOST`."""
    recorded: list[Recording] = []
    for s in settlements:
        now = s.at
        if s.status is Status.PENDING:
            written = db.count(
                "UPDATE outbox SET status='pending', next_attempt_at=?, lease_until=NULL,"
                " claimed_by=NULL, last_reason=?, last_error=?" + _OWN,
                (s.next_attempt_at, s.reason.value, s.error, s.row_id, holder),
            )
        else:
            # a message sent after failed attempts keeps the last error it overcame
            written = db.count(
                "UPDATE outbox SET status=?, channel_id=?, ts=?, finished_at=?, lease_until=NULL,"
                " claimed_by=NULL, last_reason=?, last_error=COALESCE(?, last_error)" + _OWN,
                (s.status.value, s.channel_id, s.ts, now, s.reason.value, s.error, s.row_id,
                 holder),
            )  # fmt: skip
        if s.pause is not None:  # a rate limit says something about the channel, whoever asks
            pause(db, s.pace_key, now, s.pause)
        if written != 1:
            recorded.append(Recording.LOST)
            continue
        for effect in s.effects:
            _remember(db, s.pace_key, effect, now)
        recorded.append(Recording.RECORDED)
    return recorded


def _remember(db: Db, pace_key: str, effect: Remember | Touch | Forget, now: float) -> None:
    if isinstance(effect, Remember):
        ref = effect.ref
        db.run(
            "INSERT INTO messages (pace_key, key, channel_id, ts, order_at, count, first_at,"
            " last_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (pace_key, key) DO"
            " UPDATE SET channel_id=excluded.channel_id, ts=excluded.ts,"
            " order_at=excluded.order_at, count=excluded.count, first_at=excluded.first_at,"
            " last_at=excluded.last_at, expires_at=excluded.expires_at",
            (pace_key, effect.key, ref.channel_id, ref.ts, ref.order_at, ref.count,
             ref.first_at, ref.last_at, effect.expires_at),
        )  # fmt: skip
    elif isinstance(effect, Touch):
        # the newest state's time only moves forward; the expiry is only ever extended
        db.run(
            "UPDATE messages SET"
            " order_at={greatest}(COALESCE(order_at, ?), COALESCE(?, order_at)),"
            " count=COALESCE(?, count), last_at=?,"
            " expires_at={greatest}(expires_at, COALESCE(?, expires_at))"
            " WHERE pace_key=? AND key=?",
            (effect.order_at, effect.order_at, effect.count, now, effect.expires_at, pace_key,
             effect.key),
        )  # fmt: skip
    else:
        db.run("DELETE FROM messages WHERE pace_key=? AND key=?", (pace_key, effect.key))


def pause(db: Db, key: str, now: float, seconds: float) -> None:
    """A rate limit on `key`: nothing leaves on it for `seconds` (for every replica), and its
    burst is spent."""
    db.run(
        "INSERT INTO pace (key, tokens, updated, paused_until) VALUES (?, 0, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET tokens=0, updated=excluded.updated,"
        " paused_until={greatest}(pace.paused_until, excluded.paused_until)",
        (key, now, now + seconds),
    )


# A claim goes back to pending when its lease ran out (the backstop) or when its holder is
# presumed dead: its heartbeat is older than `stale_after` by the database's clock (the
# transaction's start: never later than the decision). The stale `replicas` rows are locked
# (FOR SHARE on PostgreSQL), which re-reads a row renewed since this statement's snapshot and
# keeps any renewal from landing until the release commits: a holder that renewed in time keeps
# its claims. A claim without a heartbeat row (`claimed_by` NULL: written by an older relay, or
# by a process that does not beat) has only its lease. See relay.delivery.heartbeat. (No
# leading WITH: Python's sqlite3 reports no row count for a statement that starts with one.)
_RELEASE = """
UPDATE outbox SET status='pending', lease_until=NULL, claimed_by=NULL
WHERE status='inflight'
  AND (lease_until IS NULL OR lease_until <= ? OR claimed_by IN (
      SELECT holder FROM replicas
      WHERE heartbeat < {epoch_now} - ?
        AND holder IN (SELECT claimed_by FROM outbox WHERE status='inflight'){for_share}))
"""


def release_expired(db: Db, now: float, stale_after: float) -> int:
    """Claims whose lease ran out, or whose holder's heartbeat is older than `stale_after`,
    come back as pending (their worker died: the at-least-once window)."""
    return db.count(_RELEASE, (now, stale_after))


def beat(db: Db, holder: str) -> None:
    """`holder` is alive now, by the database's clock: read as the statement runs, so never
    earlier than the moment relay.delivery.heartbeat counts its fence from."""
    db.run(
        "INSERT INTO replicas (holder, heartbeat) VALUES (?, {epoch_clock})"
        " ON CONFLICT (holder) DO UPDATE SET heartbeat=excluded.heartbeat",
        (holder,),
    )


# ------------------------------------------------------------------ digests


def due_digests(db: Db, now: float) -> list[DigestBatch]:
    batches = []
    for gid, route, key, destination, pace_key, show in db.all(
        "SELECT id, route, group_key, destination, pace_key, show FROM digest_groups"
        " WHERE flush_at IS NOT NULL AND flush_at <= ? ORDER BY flush_at, id",
        (now,),
    ):
        items = tuple(
            DigestItem(i[0], i[1], i[2], i[3], i[4], Message.from_json(json.loads(i[5])), i[6])
            for i in db.all(
                "SELECT id, event_source, event_id, event_type, template, payload, created_at"
                " FROM digest_items WHERE group_id=? ORDER BY id",
                (gid,),
            )
        )
        batches.append(DigestBatch(gid, route, key, destination, pace_key, show, items))
    return batches


def next_digest_at(db: Db) -> float | None:
    (when,) = db.one("SELECT MIN(flush_at) FROM digest_groups WHERE flush_at IS NOT NULL")
    return None if when is None else float(when)


class AlreadyFlushed(Exception):
    """Another replica flushed this batch first: the transaction is undone, nothing posted."""


def flush_digest(db: Db, batch: DigestBatch, message: NewMessage | None, now: float) -> None:
    """The digest (or the lone item's own message) into the outbox and its items out of the
    group; the group waits `interval` before its next digest if more arrived meanwhile."""
    found = db.one("SELECT flush_at FROM digest_groups WHERE id=?{lock}", (batch.group_id,))
    ids = [item.id for item in batch.items]
    if ids:
        gone = db.count(f"DELETE FROM digest_items WHERE id IN ({marks(len(ids))})", ids)
        if found is None or gone != len(ids):
            raise AlreadyFlushed
    if message is not None and batch.items:
        first = batch.items[0]
        db.run(
            _INSERT_OUTBOX,
            (
                first.event_source,
                first.event_id,
                first.event_type if len(batch.items) == 1 else "digest",
                batch.destination,
                batch.pace_key,
                message.template,
                dumps(message.message.to_json()),
                Status.PENDING.value,
                now,
                now,
                None,
                None,
            ),
        )
    (waiting,) = db.one("SELECT COUNT(*) FROM digest_items WHERE group_id=?", (batch.group_id,))
    (interval,) = db.one("SELECT interval FROM digest_groups WHERE id=?", (batch.group_id,))
    db.run(
        "UPDATE digest_groups SET last_flush_at=?, flush_at=? WHERE id=?",
        (now, flush_at_after_flush(waiting, interval, now), batch.group_id),
    )


# ------------------------------------------------------------------ housekeeping and reports


def prune(db: Db, now: float, dedup_ttl: float, keep_sent: float) -> tuple[int, int]:
    """Forget event ids older than `dedup_ttl` and finished rows older than `keep_sent`."""
    # an id is remembered while its event is undelivered, and so is every id received after
    # the oldest event still waiting to be routed
    events = db.count(
        "DELETE FROM events WHERE received_at < ?"
        " AND received_at < COALESCE((SELECT MIN(received_at) FROM inbox), ?)"
        " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_source = events.source"
        " AND o.event_id = events.id AND o.status IN ('pending','inflight'))",
        (now - dedup_ttl, now),
    )
    rows = db.count(
        "DELETE FROM outbox WHERE status IN ('sent','muted') AND finished_at < ?",
        (now - keep_sent,),
    )
    db.run("DELETE FROM messages WHERE expires_at <= ?", (now,))
    # replicas gone for longer than dedup_ttl, once nothing is claimed in their name
    db.run(
        "DELETE FROM replicas WHERE heartbeat < {epoch_now} - ? AND NOT EXISTS"
        " (SELECT 1 FROM outbox o WHERE o.status='inflight' AND o.claimed_by = replicas.holder)",
        (dedup_ttl,),
    )
    db.run(
        "DELETE FROM digest_groups WHERE flush_at IS NULL"
        " AND last_flush_at < ? - interval AND NOT EXISTS"
        " (SELECT 1 FROM digest_items i WHERE i.group_id = digest_groups.id)",
        (now,),
    )
    return events, rows


def stats(db: Db) -> list[DestinationStats]:
    """Per destination: rows by status, the oldest undelivered, items waiting for a digest."""
    found: dict[str, list[Any]] = {}
    for row in db.all(
        "SELECT destination,"
        " COUNT(*) FILTER (WHERE status='pending'), COUNT(*) FILTER (WHERE status='inflight'),"
        " COUNT(*) FILTER (WHERE status='dead'), COUNT(*) FILTER (WHERE status='sent'),"
        " MIN(created_at) FILTER (WHERE status IN ('pending','inflight')),"
        " COUNT(*) FILTER (WHERE status='muted') FROM outbox GROUP BY destination"
    ):
        found[row[0]] = [*row, 0]
    for destination, count in db.all(
        "SELECT g.destination, COUNT(*) FROM digest_items i JOIN digest_groups g"
        " ON g.id = i.group_id GROUP BY g.destination"
    ):
        found.setdefault(destination, [destination, 0, 0, 0, 0, None, 0, 0])[7] = count
    return [DestinationStats(*found[k]) for k in sorted(found)]


def rows(db: Db, status: Status, limit: int) -> list[OutboxRow]:
    return [
        row_of(r)
        for r in db.all(
            f"SELECT {ROW_COLUMNS} FROM outbox WHERE status=? ORDER BY id LIMIT ?",
            (status.value, limit),
        )
    ]


def _ids_clause(ids: Sequence[int] | None) -> tuple[str, list[int]]:
    if ids is None:
        return "", []
    return f" AND id IN ({marks(len(ids))})", list(ids)


def replay_dead(db: Db, ids: Sequence[int] | None, now: float) -> int:
    """Dead rows back to pending, due now, with a fresh age (ids=None: all of them)."""
    if ids is not None and not ids:
        return 0
    where, args = _ids_clause(ids)
    return db.count(
        "UPDATE outbox SET status='pending', next_attempt_at=?, created_at=?, attempts=0,"
        f" finished_at=NULL WHERE status='dead'{where}",
        (now, now, *args),
    )


def drop_dead(db: Db, ids: Sequence[int] | None) -> int:
    if ids is not None and not ids:
        return 0
    where, args = _ids_clause(ids)
    return db.count(f"DELETE FROM outbox WHERE status='dead'{where}", args)
