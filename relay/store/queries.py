"""The store's logic for reading history: the events list (filters, newest first, keyset
pages), one event in full, the dead letters, and the figures of the overview. Typed results
(`relay.store.views`), the same for the JSON API and the console's pages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from relay.event import from_record
from relay.store.db import Db
from relay.store.views import (
    AttemptView,
    DeadLetter,
    EventDetail,
    EventFilter,
    EventSummary,
    MessageView,
    Page,
    Tally,
    Window,
    percentile,
)

_SUMMARY = "e.seq, e.source, e.event_id, e.type, e.received_at, e.routed_at, e.outcome, e.text"


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _type_clause(db: Db, glob: str) -> tuple[str, str]:
    """The type filter, a shell glob (`task.*`): SQLite's GLOB, PostgreSQL's LIKE (where `[`
    stands for itself); case-sensitive on both."""
    if db.dialect.name == "sqlite":
        return " AND e.type GLOB ?", glob
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return " AND e.type LIKE ? ESCAPE '\\'", escaped.replace("*", "%").replace("?", "_")


def where(db: Db, f: EventFilter) -> tuple[str, list[Any]]:
    """The filter as a WHERE clause over `history_events e`."""
    sql, args = "WHERE 1=1", list[Any]()
    if f.source:
        sql += " AND e.source = ?"
        args.append(f.source)
    if f.type:
        clause, value = _type_clause(db, f.type)
        sql += clause
        args.append(value)
    if f.outcome:
        sql += " AND e.outcome = ?"
        args.append(f.outcome)
    if f.destination:
        sql += (
            " AND EXISTS (SELECT 1 FROM history_messages d WHERE d.seq = e.seq"
            " AND d.destination = ?)"
        )
        args.append(f.destination)
    if f.since is not None:
        sql += " AND e.received_at >= ?"
        args.append(f.since)
    if f.until is not None:
        sql += " AND e.received_at < ?"
        args.append(f.until)
    if f.q:
        sql += " AND (e.event_id = ? OR e.text LIKE ? ESCAPE '\\' OR e.type LIKE ? ESCAPE '\\')"
        args += [f.q, _like(f.q), _like(f.q)]
    return sql, args


def events(db: Db, f: EventFilter, before: int | None, limit: int) -> Page[EventSummary]:
    """Up to `limit` events matching `f`, newest first, older than the `seq` `before`."""
    sql, args = where(db, f)
    if before is not None:
        sql += " AND e.seq < ?"
        args.append(before)
    rows = db.all(
        f"SELECT {_SUMMARY} FROM history_events e {sql} ORDER BY e.seq DESC LIMIT ?",
        (*args, limit + 1),
    )
    more = len(rows) > limit
    rows = rows[:limit]
    destinations = _destinations(db, [r[0] for r in rows])
    items = tuple(_summary(r, destinations.get(r[0], ())) for r in rows)
    return Page(items, items[-1].id if more and items else None)


def _summary(r: Sequence[Any], destinations: Sequence[str]) -> EventSummary:
    return EventSummary(
        id=r[0], source=r[1], event_id=r[2], type=r[3], received_at=r[4], routed_at=r[5],
        outcome=r[6], text=r[7], destinations=tuple(destinations),
    )  # fmt: skip


def _destinations(db: Db, seqs: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    if seqs:
        among, args = db.among(seqs)
        for seq, destination in db.all(
            f"SELECT seq, destination FROM history_messages WHERE seq {among} ORDER BY id", args
        ):
            if destination not in found.setdefault(seq, []):
                found[seq].append(destination)
    return found


_MESSAGE = (
    "id, outbox_id, destination, route, template, payload, status, step, digest, created_at,"
    " finished_at, attempts, last_reason, last_error, channel_id, ts"
)


def event(db: Db, seq: int) -> EventDetail | None:
    """One event in full: its envelope, routing trace, messages and their attempts."""
    row = db.one(
        f"SELECT {_SUMMARY}, e.provider, e.created, e.body, e.envelope, e.data, e.routing"
        " FROM history_events e WHERE e.seq = ?",
        (seq,),
    )
    if row is None:
        return None
    messages = db.all(f"SELECT {_MESSAGE} FROM history_messages WHERE seq = ? ORDER BY id", (seq,))
    attempts: dict[int, list[AttemptView]] = {}
    if messages:
        among, args = db.among([m[0] for m in messages])
        for a in db.all(
            "SELECT message_id, at, status, reason, error, took, next_attempt_at"
            f" FROM history_attempts WHERE message_id {among} ORDER BY id",
            args,
        ):
            attempts.setdefault(a[0], []).append(AttemptView(*a[1:]))
    views = tuple(_message(m, attempts.get(m[0], [])) for m in messages)
    summary = _summary(row[:8], list(dict.fromkeys(v.destination for v in views)))
    provider, created, body, envelope, data = row[8:13]
    parsed = from_record(
        summary.source, summary.event_id, (summary.type, provider, created, row[7], body,
                                           envelope, data),
    )  # fmt: skip
    return EventDetail(summary, provider, dict(parsed.envelope), json.loads(row[13]), views, parsed)


def _message(m: Sequence[Any], attempts: Sequence[AttemptView]) -> MessageView:
    return MessageView(
        id=m[0], outbox_id=m[1], destination=m[2], route=m[3], template=m[4],
        message=json.loads(m[5]), status=m[6], conversation=json.loads(m[7]) if m[7] else None,
        digest=m[8], created_at=m[9], finished_at=m[10], attempts=m[11], last_reason=m[12],
        last_error=m[13], channel_id=m[14], ts=m[15], timeline=tuple(attempts),
    )  # fmt: skip


def dead(db: Db, f: EventFilter, before: int | None, limit: int) -> Page[DeadLetter]:
    """Dead letters of events matching `f` (still in the outbox: replayable), newest first,
    keyset by the outbox id."""
    sql, args = _dead_where(db, f)
    if before is not None:
        sql += " AND m.outbox_id < ?"
        args.append(before)
    rows = db.all(
        f"SELECT m.outbox_id, m.destination, m.last_reason, m.last_error, m.attempts,"
        f" m.finished_at, {_SUMMARY} FROM history_messages m"
        f" JOIN history_events e ON e.seq = m.seq {sql} ORDER BY m.outbox_id DESC LIMIT ?",
        (*args, limit + 1),
    )
    more = len(rows) > limit
    items = tuple(
        DeadLetter(r[0], r[1], r[2], r[3], r[4], r[5], _summary(r[6:], [r[1]]))
        for r in rows[:limit]
    )
    return Page(items, items[-1].id if more and items else None)


def _dead_where(db: Db, f: EventFilter) -> tuple[str, list[Any]]:
    sql, args = where(db, replace(f, outcome=None, destination=None))
    sql += " AND m.status = 'dead' AND EXISTS (SELECT 1 FROM outbox o WHERE o.id = m.outbox_id"
    sql += " AND o.status = 'dead')"
    if f.destination:
        sql += " AND m.destination = ?"
        args.append(f.destination)
    return sql, args


def dead_ids(db: Db, f: EventFilter) -> list[int]:
    """The outbox ids of every dead letter matching `f` (what a replay or drop would take)."""
    sql, args = _dead_where(db, f)
    return [
        r[0]
        for r in db.all(
            f"SELECT m.outbox_id FROM history_messages m JOIN history_events e ON e.seq = m.seq"
            f" {sql} ORDER BY m.outbox_id",
            args,
        )
    ]


# ------------------------------------------------------------------ overview


def _by_time(db: Db, index: str) -> str:
    """Read a period through its covering index: without statistics SQLite's planner prefers
    an index that saves the GROUP BY's sort and then visits every row of the table."""
    return f" INDEXED BY {index}" if db.dialect.name == "sqlite" else ""


def tallies(db: Db, since: float) -> list[Tally]:
    """Events received since `since`, per source and outcome."""
    return [
        Tally(*r)
        for r in db.all(
            "SELECT source, outcome, COUNT(*) FROM history_events"
            + _by_time(db, "history_events_received")
            + " WHERE received_at >= ?"
            " GROUP BY source, outcome ORDER BY source, outcome",
            (since,),
        )
    ]


def per_hour(db: Db, since: float) -> list[tuple[float, int]]:
    """Events received per hour since `since`: (the hour's start, count), oldest first."""
    return [
        (float(r[0]) * 3600.0, int(r[1]))
        for r in db.all(
            "SELECT FLOOR(received_at / 3600.0) AS h, COUNT(*) FROM history_events"
            + _by_time(db, "history_events_received")
            + " WHERE received_at >= ? GROUP BY h ORDER BY h",
            (since,),
        )
    ]


def latencies(db: Db, since: float) -> list[float]:
    """Seconds from acceptance to delivery of the messages made since `since` and delivered,
    sorted."""
    return sorted(
        float(r[0])
        for r in db.all(
            "SELECT finished_at - created_at FROM history_messages"
            + _by_time(db, "history_messages_created")
            + " WHERE created_at >= ? AND status = 'sent'",
            (since,),
        )
    )


def busiest(db: Db, since: float, failing: bool, limit: int = 5) -> dict[str, list[Tally]]:
    """The event types and the destinations with the most events (or failures: dead or
    retrying) since `since`."""
    failed = " AND e.outcome IN ('dead','retrying')" if failing else ""
    types = db.all(
        "SELECT e.source, e.type, COUNT(*) AS n FROM history_events e"
        + _by_time(db, "history_events_received")
        + " WHERE e.received_at >= ?"
        f"{failed} GROUP BY e.source, e.type ORDER BY n DESC, e.type LIMIT ?",
        (since, limit),
    )
    status = " AND m.status IN ('dead','retrying','discarded')" if failing else ""
    destinations = db.all(
        "SELECT m.destination, '', COUNT(*) AS n FROM history_messages m"
        + _by_time(db, "history_messages_created")
        + f" WHERE m.created_at >= ?{status} GROUP BY m.destination ORDER BY n DESC,"
        " m.destination LIMIT ?",
        (since, limit),
    )
    return {
        "types": [Tally(*r) for r in types],
        "destinations": [Tally(r[0], None, r[2]) for r in destinations],
    }


def window(db: Db, since: float) -> Window:
    """The overview's figures for events received since `since`."""
    ordered = latencies(db, since)
    top, failing = busiest(db, since, failing=False), busiest(db, since, failing=True)
    return Window(
        since=since,
        by_source=tuple(tallies(db, since)),
        per_hour=tuple(per_hour(db, since)),
        latency_p50=percentile(ordered, 0.5),
        latency_p95=percentile(ordered, 0.95),
        busiest_types=tuple(top["types"]),
        busiest_destinations=tuple(top["destinations"]),
        failing_types=tuple(failing["types"]),
        failing_destinations=tuple(failing["destinations"]),
    )
