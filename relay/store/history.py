"""The store's logic for history: what it keeps of every routed event, written where the router
and the worker already write, and pruned in bounded steps.

An event enters history in the router's transaction that takes it out of the inbox (its inbox
row is moved, as stored: no encoding, and nothing more on the acknowledgement path), with the
routing trace and one `history_messages` row per message it made. The worker's transaction
that records an attempt's outcome on the outbox also appends the attempt and updates the
message and the event's outcome. A message row outlives its outbox row (sent rows are pruned
after `dedup_ttl`, dead ones may be dropped): history keeps it for `store.history`.

A message parked for a digest is `grouped` until its group is flushed; it then follows the
digest's outbox row (one row, one attempt per try, recorded on every message it lists).

An event's outcome is the most pressing of its messages' states, in this order: dead, retrying,
pending (not yet sent), grouped (waiting for a digest), delivered, silenced (held back by a
silence, whose id the message keeps), muted; an event that made no message (dropped by a rule,
or matched none) is `dropped`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from relay.records import DigestBatch, NewMessage, Settlement, Status
from relay.store.db import Db

OUTCOMES = ("delivered", "retrying", "dead", "silenced", "muted", "dropped", "pending", "grouped")

# a message's history status after an attempt that left its outbox row in this status
_AFTER = {Status.PENDING: "retrying", Status.SENT: "sent", Status.DEAD: "dead"}

# the event's outcome from its messages' statuses, most pressing first (see the module
# docstring): a message's status, and the outcome it gives
_OUTCOMES = (
    ("dead", "dead"),
    ("discarded", "dead"),
    ("retrying", "retrying"),
    ("pending", "pending"),
    ("grouped", "grouped"),
    ("sent", "delivered"),
    ("silenced", "silenced"),
    ("muted", "muted"),
)

INBOX_ROW = (
    "seq, source, event_id, type, provider, created, text, body, envelope, data, received_at"
)
INSERT_EVENT = (
    f"INSERT INTO history_events ({INBOX_ROW}, routed_at, routing, outcome)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
)
INSERT_MESSAGE = (
    "INSERT INTO history_messages (seq, outbox_id, destination, route, template, payload,"
    " status, step, digest, created_at, finished_at, silence_id)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)


def message_row(
    seq: int,
    m: NewMessage,
    route: str,
    payload: str,
    step: str | None,
    now: float,
) -> list[Any]:
    """The `INSERT_MESSAGE` values of one message an event made: queued (its outbox id, at
    index 1, filled in once known), silenced, muted, or parked for a digest."""
    if m.silence is not None:
        status = "silenced"
    elif m.muted:
        status = "muted"
    elif m.group is not None:
        status = "grouped"
    else:
        status = "pending"
    digest = m.group.key if m.group is not None else None
    finished = now if m.muted or m.silence is not None else None
    return [seq, None, m.destination, route, m.template, payload, status, step, digest, now,
            finished, m.silence]  # fmt: skip


def outcome_of(statuses: Collection[str]) -> str:
    """An event's outcome from its messages' statuses."""
    return next((outcome for status, outcome in _OUTCOMES if status in statuses), "dropped")


def refresh_outcomes(db: Db, seqs: Sequence[int]) -> None:
    """Recompute the outcome of these events from their messages' statuses, read in one
    statement; an event whose outcome stays is not written.

    Not one UPDATE with a subquery per state: while the tables are young (before their first
    ANALYZE, a burst on a new database) PostgreSQL planned those as hashes of every message in
    each state, read through another index, for each event refreshed: 63% of the server's time
    in `bench/e2e.py`, growing with the history kept."""
    if not seqs:
        return
    statuses: dict[int, set[str]] = {seq: set() for seq in seqs}
    among, args = db.among(seqs)
    for seq, status in db.all(f"SELECT seq, status FROM history_messages WHERE seq {among}", args):
        statuses[seq].add(status)
    db.many(
        "UPDATE history_events SET outcome=? WHERE seq=? AND outcome<>?",
        [(outcome_of(found), seq, outcome_of(found)) for seq, found in statuses.items()],
    )


# An attempt on each message its outbox row carries (a digest carries one of each event it
# lists), and the message's new state; run over a group of outcomes at once (`Db.many`).
_INSERT_ATTEMPTS = (
    "INSERT INTO history_attempts (message_id, at, status, reason, error, took, next_attempt_at)"
    " SELECT id, ?, ?, ?, ?, ?, ? FROM history_messages WHERE outbox_id=? ORDER BY id"
)
_UPDATE_MESSAGES = (
    "UPDATE history_messages SET status=?, attempts=attempts+1, last_reason=?,"
    " last_error=COALESCE(?, last_error), channel_id=COALESCE(?, channel_id),"
    " ts=COALESCE(?, ts), finished_at=? WHERE outbox_id=?"
)


def record_attempts(db: Db, settled: Sequence[Settlement]) -> None:
    """The outcomes of attempts, in the transaction that writes them on their outbox rows; a
    row queued before history existed has no message here, and gets none."""
    if not settled:
        return
    attempts, messages = [], []
    for s in settled:
        status = _AFTER.get(s.status, s.status.value)
        attempts.append(
            (s.at, status, s.reason.value, s.error, s.took, s.next_attempt_at, s.row_id)
        )
        messages.append(
            (status, s.reason.value, s.error, s.channel_id, s.ts,
             None if s.status is Status.PENDING else s.at, s.row_id)
        )  # fmt: skip
    if not db.many(_INSERT_ATTEMPTS, attempts):
        return
    db.many(_UPDATE_MESSAGES, messages)
    among, args = db.among([s.row_id for s in settled])
    # the events' seqs read first: PostgreSQL plans an `IN (SELECT ...)` here as a scan of
    # every event
    seqs = db.all(f"SELECT DISTINCT seq FROM history_messages WHERE outbox_id {among}", args)
    refresh_outcomes(db, sorted(seq for (seq,) in seqs))


def digested(db: Db, batch: DigestBatch, outbox_id: int) -> None:
    """A digest group's items went out as the outbox row `outbox_id`: their events' messages
    follow that row from now on."""
    seqs: list[int] = []
    for item in batch.items:
        seqs += [
            row[0]
            for row in db.all(
                "UPDATE history_messages SET outbox_id=?, status='pending'"
                " WHERE status='grouped' AND destination=? AND digest=? AND seq IN"
                " (SELECT seq FROM history_events WHERE source=? AND event_id=?) RETURNING seq",
                (outbox_id, batch.destination, batch.group_key, item.event_source,
                 item.event_id),
            )
        ]  # fmt: skip
    refresh_outcomes(db, sorted(set(seqs)))


def mark_dead(db: Db, outbox_ids: Sequence[int] | None, status: str) -> None:
    """Dead letters replayed (`pending`) or dropped (`discarded`), by outbox id (None: all)."""
    where: str = ""
    args: list[Any] = []
    if outbox_ids is not None:
        if not outbox_ids:
            return
        among, args = db.among(outbox_ids)
        where = f" AND outbox_id {among}"
    seqs = [
        row[0]
        for row in db.all(
            f"SELECT DISTINCT seq FROM history_messages WHERE status='dead'{where}", args
        )
    ]
    db.run(
        f"UPDATE history_messages SET status=?, finished_at=NULL WHERE status='dead'{where}",
        (status, *args),
    )
    refresh_outcomes(db, seqs)


def prune(db: Db, before: float, limit: int) -> int:
    """Forget up to `limit` of the oldest events received before `before`, with their
    messages and attempts (bounded work: the caller repeats while this returns `limit`)."""
    seqs = [
        row[0]
        for row in db.all(
            "SELECT seq FROM history_events WHERE received_at < ? ORDER BY received_at LIMIT ?",
            (before, limit),
        )
    ]
    if not seqs:
        return 0
    among, args = db.among(seqs)
    db.run(
        "DELETE FROM history_attempts WHERE message_id IN"
        f" (SELECT id FROM history_messages WHERE seq {among})",
        args,
    )
    db.run(f"DELETE FROM history_messages WHERE seq {among}", args)
    return db.count(f"DELETE FROM history_events WHERE seq {among}", args)
