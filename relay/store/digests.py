"""The store's logic for digests: the groups whose digest is due, and flushing one into the
outbox under its row lock (so that only one replica posts it).
"""

from __future__ import annotations

import json

from relay.conversation.grouping import flush_at_after_flush
from relay.messages import message_from_json
from relay.records import (
    DigestBatch,
    DigestItem,
    NewMessage,
    Status,
)
from relay.store import history
from relay.store.db import Db, dumps
from relay.store.inbox import INSERT_OUTBOX

# ------------------------------------------------------------------ digests


def due_digests(db: Db, now: float) -> list[DigestBatch]:
    batches = []
    for gid, route, key, destination, pace_key, show in db.all(
        "SELECT id, route, group_key, destination, pace_key, show FROM digest_groups"
        " WHERE flush_at IS NOT NULL AND flush_at <= ? ORDER BY flush_at, id",
        (now,),
    ):
        items = tuple(
            DigestItem(i[0], i[1], i[2], i[3], i[4], message_from_json(json.loads(i[5])), i[6])
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
        among, args = db.among(ids)
        gone = db.count(f"DELETE FROM digest_items WHERE id {among}", args)
        if found is None or gone != len(ids):
            raise AlreadyFlushed
    if message is not None and batch.items:
        first = batch.items[0]
        (outbox_id,) = db.one(
            INSERT_OUTBOX + " RETURNING id",
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
                None,
            ),
        )
        history.digested(db, batch, outbox_id)
    (waiting,) = db.one("SELECT COUNT(*) FROM digest_items WHERE group_id=?", (batch.group_id,))
    (interval,) = db.one("SELECT interval FROM digest_groups WHERE id=?", (batch.group_id,))
    db.run(
        "UPDATE digest_groups SET last_flush_at=?, flush_at=? WHERE id=?",
        (now, flush_at_after_flush(waiting, interval, now), batch.group_id),
    )
