"""The store's logic for housekeeping and reports: pruning what is no longer needed, the
statistics `relay outbox` and `/metrics` show, and dead letters listed, replayed or dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay.records import (
    DestinationStats,
    OutboxRow,
    Status,
)
from relay.store import history, silences
from relay.store.db import Db
from relay.store.outbox import ROW_COLUMNS, row_of

# ------------------------------------------------------------------ housekeeping and reports


# "is this event still undelivered?" is asked of every old id: the index `outbox_open_event`
# (migration 9) answers it in one lookup, where a scan of the open rows per id took minutes
# once thousands of messages waited (a chat down for an hour)
FORGET_EVENTS = (
    "DELETE FROM events WHERE received_at < ?"
    " AND received_at < COALESCE((SELECT MIN(received_at) FROM inbox), ?)"
    " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_source = events.source"
    " AND o.event_id = events.id AND o.status IN ('pending','inflight'))"
)


def prune_history(db: Db, before: float, limit: int) -> int:
    """`history.prune`, and the silences that ended before `before` (history names them: they
    are kept as long as it is)."""
    silences.prune(db, before)
    return history.prune(db, before, limit)


def prune(db: Db, now: float, dedup_ttl: float, keep_sent: float) -> tuple[int, int]:
    """Forget event ids older than `dedup_ttl` and finished rows older than `keep_sent`."""
    # an id is remembered while its event is undelivered, and so is every id received after
    # the oldest event still waiting to be routed
    events = db.count(FORGET_EVENTS, (now - dedup_ttl, now))
    rows = db.count(
        "DELETE FROM outbox WHERE status IN ('sent','muted','silenced') AND finished_at < ?",
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
        " COUNT(*) FILTER (WHERE status='muted'), 0,"
        " COUNT(*) FILTER (WHERE status='silenced') FROM outbox GROUP BY destination"
    ):
        found[row[0]] = list(row)
    for destination, count in db.all(
        "SELECT g.destination, COUNT(*) FROM digest_items i JOIN digest_groups g"
        " ON g.id = i.group_id GROUP BY g.destination"
    ):
        found.setdefault(destination, [destination, 0, 0, 0, 0, None, 0, 0, 0])[7] = count
    return [DestinationStats(*found[k]) for k in sorted(found)]


def rows(db: Db, status: Status, limit: int) -> list[OutboxRow]:
    return [
        row_of(r)
        for r in db.all(
            f"SELECT {ROW_COLUMNS} FROM outbox WHERE status=? ORDER BY id LIMIT ?",
            (status.value, limit),
        )
    ]


def _ids_clause(db: Db, ids: Sequence[int] | None) -> tuple[str, list[Any]]:
    if ids is None:
        return "", []
    among, args = db.among(ids)
    return f" AND id {among}", args


def replay_dead(db: Db, ids: Sequence[int] | None, now: float) -> int:
    """Dead rows back to pending, due now, with a fresh age (ids=None: all of them)."""
    if ids is not None and not ids:
        return 0
    where, args = _ids_clause(db, ids)
    history.mark_dead(db, ids, "pending")
    return db.count(
        "UPDATE outbox SET status='pending', next_attempt_at=?, created_at=?, attempts=0,"
        f" finished_at=NULL WHERE status='dead'{where}",
        (now, now, *args),
    )


def drop_dead(db: Db, ids: Sequence[int] | None) -> int:
    if ids is not None and not ids:
        return 0
    where, args = _ids_clause(db, ids)
    history.mark_dead(db, ids, "discarded")
    return db.count(f"DELETE FROM outbox WHERE status='dead'{where}", args)
