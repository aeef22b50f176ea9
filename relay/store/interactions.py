"""The store's part in Slack interactivity (relay.interactions): the outbox row a click refers
to, with where the chat holds its message, and the replay guard.

The replay guard remembers each verified request's signature in one table every replica shares,
so a request captured and sent again (to this replica or another) within the signature's
tolerance is refused; older marks are forgotten as new ones arrive (a request older than the
tolerance is refused as stale before it gets here).
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.records import OutboxRow
from relay.store.db import Db
from relay.store.outbox import ROW_COLUMNS, row_of


@dataclass(frozen=True, slots=True)
class SentRow:
    """An outbox row and the message the chat holds for it (None while it is not sent); for a
    repeated message, its counter as it stands (count, first, last), so that an update after a
    click keeps "Seen N times"."""

    row: OutboxRow
    channel_id: str | None
    ts: str | None
    repeat: tuple[int, float, float] | None = None


def sent_row(db: Db, row_id: int) -> SentRow | None:
    found = db.one(f"SELECT {ROW_COLUMNS}, channel_id, ts FROM outbox WHERE id=?", (row_id,))
    if found is None:
        return None
    row = row_of(found[:-2])
    repeat = None
    if row.step is not None and row.step.repeat is not None:
        counter = db.one(
            "SELECT count, first_at, last_at FROM messages WHERE pace_key=? AND key=? AND ts=?",
            (row.pace_key, row.step.repeat, found[-1]),
        )
        if counter is not None and counter[0] > 1:
            repeat = (int(counter[0]), float(counter[1]), float(counter[2]))
    return SentRow(row, found[-2], found[-1], repeat)


def first_use(db: Db, mark: str, now: float, forget_before: float) -> bool:
    """Record `mark` (a request's signature); False if it was recorded already: a replay."""
    db.run("DELETE FROM slack_requests WHERE seen_at < ?", (forget_before,))
    return (
        db.count(
            "INSERT INTO slack_requests (signature, seen_at) VALUES (?, ?)"
            " ON CONFLICT (signature) DO NOTHING",
            (mark, now),
        )
        == 1
    )
