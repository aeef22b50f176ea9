"""The store's logic for accepted events: dedup and the inbox (the acknowledgement path), the
routing lease, and the transaction that turns inbox events into outbox rows and digest items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relay.conversation.grouping import GroupTimes, flush_at_on_add
from relay.event import Event, Record, from_record
from relay.records import (
    Acceptance,
    InboxStats,
    NewMessage,
    Received,
    Routed,
    Status,
)
from relay.store import history
from relay.store.db import Db, dumps

# ------------------------------------------------------------------ intake

# How many events one statement writes: 50 inbox rows of 10 values stay far below both
# databases' parameter limits, and a few statements per batch keep a commit short.
ROWS_PER_STATEMENT = 50

Incoming = tuple[Event, Record, float]

_INSERT_EVENTS = "INSERT INTO events (source, id, type, received_at) "
_EVENTS_TYPES = ("text", "text", "text", "float8")  # on PostgreSQL (`Db.rows`)
_INSERT_INBOX = (
    "INSERT INTO inbox (source, event_id, type, provider, created, text, body, envelope, data,"
    " received_at) "
)
_INBOX_TYPES = ("text", "text", "text", "text", "text", "text", "bytea", "text", "text", "float8")
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
        rows, args = db.rows(
            _EVENTS_TYPES, [(e.source, e.id, e.type, now) for e, _record, now in fresh.values()]
        )
        taken = {
            (row[0], row[1])
            for row in db.all(
                _INSERT_EVENTS + rows + " ON CONFLICT DO NOTHING RETURNING source, id", args
            )
        }
        waiting = [
            (event.source, event.id, *record, now)
            for key, (event, record, now) in fresh.items()
            if key in taken
        ]
        if waiting:
            rows, args = db.rows(_INBOX_TYPES, waiting)
            db.run(_INSERT_INBOX + rows, args)
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


def waiting(db: Db, limit: int) -> int:
    """How many events wait to be routed, counted up to `limit` (a bounded walk)."""
    (count,) = db.one("SELECT COUNT(*) FROM (SELECT 1 FROM inbox LIMIT ?) w", (limit,))
    return int(count)


def inbox_stats(db: Db) -> InboxStats:
    waiting, oldest = db.one("SELECT COUNT(*), MIN(received_at) FROM inbox")
    return InboxStats(waiting, oldest)


_INSERT_OUTBOX_ROWS = (
    "INSERT INTO outbox (event_source, event_id, event_type, destination, pace_key, template,"
    " payload, status, created_at, next_attempt_at, step, finished_at, silence_id) "
)
_OUTBOX_TYPES = ("text",) * 8 + ("float8", "float8", "text", "float8", "text")
INSERT_OUTBOX = _INSERT_OUTBOX_ROWS + "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"


def enqueue(db: Db, planned: Sequence[Routed], now: float | None = None) -> set[int]:
    """Replace each inbox event by its messages (created when the event was received), in the
    caller's transaction, and move it into history with its routing trace and messages; the
    `seq`s written. An event no longer in the inbox (routed already, by another replica say)
    is skipped: deleting it is what takes it. A batch costs a handful of statements whatever
    its size (`bench/store.py`)."""
    if not planned:
        return set()
    among, args = db.among([routed.received.seq for routed in planned])
    taken = {
        row[0]: row
        for row in db.all(
            f"DELETE FROM inbox WHERE seq {among} RETURNING {history.INBOX_ROW}", args
        )
    }
    moved = [routed for routed in planned if routed.received.seq in taken]
    writes = [
        Writes(r.received.seq, r.received.event, r.messages, r.routes, r.received.received_at)
        for r in moved
    ]
    outcomes = write_all(db, writes)
    events = [
        (*taken[r.received.seq], r.received.received_at if now is None else now, r.trace,
         outcomes[r.received.seq])
        for r in moved
    ]  # fmt: skip
    if db.many(history.INSERT_EVENT, events) != len(events):
        # an event history held already (ON CONFLICT): its outcome counts its older messages
        history.refresh_outcomes(db, list(taken))
    return set(taken)


def add_messages(
    db: Db, seq: int, messages: Sequence[NewMessage], routes: Sequence[str], now: float
) -> int:
    """More messages of an event history holds (a resend, a reroute), queued now; how many
    (0: history no longer holds the event)."""
    found = db.one(
        "SELECT source, event_id, type, provider, created, text, body, envelope, data"
        " FROM history_events WHERE seq=?",
        (seq,),
    )
    if found is None:
        return 0
    event = from_record(found[0], found[1], found[2:])
    write_all(db, [Writes(seq, event, messages, routes, now)])
    history.refresh_outcomes(db, (seq,))
    return len(messages)


@dataclass(frozen=True, slots=True)
class Writes:
    """The messages of one event to write, created at `now`, with the route of each."""

    seq: int
    event: Event
    messages: Sequence[NewMessage]
    routes: Sequence[str]
    now: float


def write_all(db: Db, writes: Sequence[Writes]) -> dict[int, str]:
    """Events' messages into the outbox (or their digest groups), and into their history: one
    multi-row INSERT per `ROWS_PER_STATEMENT` outbox rows, one `executemany` for history; the
    outcome of each event (by `seq`) its messages make."""
    queued: list[tuple[Any, ...]] = []  # outbox rows, in order
    kept: list[list[Any]] = []  # history rows, in order; an outbox id filled in below
    waiting: list[int] = []  # which history row each outbox row is
    outcomes: dict[int, str] = {}
    for w in writes:
        statuses = []
        for index, m in enumerate(w.messages):
            payload = dumps(m.message.to_json())
            step = dumps(m.step.to_json()) if m.step is not None else None
            held = m.muted or m.silence is not None  # recorded as it is, never delivered
            if m.group is not None and not held:
                _add_to_group(db, w.event, m, payload, w.now)
            else:
                status = Status.SILENCED if m.silence is not None else Status.MUTED
                waiting.append(len(kept))
                queued.append(
                    (w.event.source, w.event.id, w.event.type, m.destination, m.pace_key,
                     m.template, payload, (status if held else Status.PENDING).value, w.now,
                     w.now, step if m.step is not None and m.step.kept else None,
                     w.now if held else None, m.silence)
                )  # fmt: skip
            route = w.routes[index] if index < len(w.routes) else ""
            row = history.message_row(w.seq, m, route, payload, step, w.now)
            statuses.append(row[6])
            kept.append(row)
        outcomes[w.seq] = history.outcome_of(statuses)
    for start in range(0, len(queued), ROWS_PER_STATEMENT):
        part = queued[start : start + ROWS_PER_STATEMENT]
        # ids are handed out in the order the rows are inserted (SQLite's AUTOINCREMENT and a
        # PostgreSQL sequence only grow, and a multi-row INSERT, or one from unnest, inserts in
        # order), while RETURNING promises no order: sorted, they follow `part`
        rows, args = db.rows(_OUTBOX_TYPES, part)
        ids = sorted(row[0] for row in db.all(_INSERT_OUTBOX_ROWS + rows + " RETURNING id", args))
        if len(ids) != len(part):
            raise RuntimeError(f"{len(part)} outbox rows inserted, {len(ids)} ids returned")
        for offset, outbox_id in enumerate(ids):
            kept[waiting[start + offset]][1] = outbox_id
    db.many(history.INSERT_MESSAGE, kept)
    return outcomes


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
