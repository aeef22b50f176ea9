"""The store's logic for silences: created, listed, expired, kept for history, then pruned.

One table shared by every replica: a silence created or expired through any of them is seen by
the others' next routing batch (the router reads the silences it needs per batch).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from relay.config import Match
from relay.records import OutboxRow
from relay.silences.model import Silence
from relay.store.db import Db
from relay.store.outbox import ROW_COLUMNS, row_of

log = logging.getLogger("relay.store")

_COLUMNS = (
    "id, matchers, destination, message_key, starts_at, ends_at, comment, created_by, created_at"
)


def _silence(row: Any) -> Silence:
    return Silence(
        id=row[0],
        match=Match.model_validate(json.loads(row[1])),
        destination=row[2],
        key=row[3],
        starts_at=row[4],
        ends_at=row[5],
        comment=row[6],
        created_by=row[7],
        created_at=row[8],
    )


def add(db: Db, silence: Silence) -> None:
    db.run(
        f"INSERT INTO silences ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
        (silence.id, silence.matchers_json(), silence.destination, silence.key, silence.starts_at,
         silence.ends_at, silence.comment, silence.created_by, silence.created_at),
    )  # fmt: skip


def get(db: Db, silence_id: str) -> Silence | None:
    row = db.one(f"SELECT {_COLUMNS} FROM silences WHERE id=?", (silence_id,))
    return _silence(row) if row is not None else None


def ending_after(db: Db, since: float | None) -> list[Silence]:
    """Silences that end after `since` (None: every one kept), the newest first."""
    if since is None:
        rows = db.all(f"SELECT {_COLUMNS} FROM silences ORDER BY created_at DESC, id")
    else:
        rows = db.all(
            f"SELECT {_COLUMNS} FROM silences WHERE ends_at > ? ORDER BY created_at DESC, id",
            (since,),
        )
    found: list[Silence] = []
    for row in rows:
        try:
            found.append(_silence(row))
        except ValueError:  # a row no relay could have written: it must not stop routing
            log.error("unreadable silence ignored", extra={"silence": row[0]})
    return found


def expire(db: Db, silence_id: str, now: float) -> Silence | None:
    """End the silence now (an ended one is left as it is); None if there is no such silence."""
    db.run(
        "UPDATE silences SET starts_at = CASE WHEN starts_at > ? THEN ? ELSE starts_at END,"
        " ends_at = ? WHERE id = ? AND ends_at > ?",
        (now, now, now, silence_id, now),
    )
    return get(db, silence_id)


def prune(db: Db, before: float) -> int:
    """Forget silences that ended before `before`."""
    return db.count("DELETE FROM silences WHERE ends_at < ?", (before,))


def recent(db: Db, limit: int) -> list[OutboxRow]:
    """The newest outbox rows, whatever their status (for a silence's preview)."""
    return [
        row_of(r)
        for r in db.all(f"SELECT {ROW_COLUMNS} FROM outbox ORDER BY id DESC LIMIT ?", (limit,))
    ]
