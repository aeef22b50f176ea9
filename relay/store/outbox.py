"""The store's logic for delivery, around the claims (`claims`): the due head of each
channel, claims given back, outcomes recorded only by the claim's holder with what the
conversation remembers, rate-limit pauses, and the release of claims whose holder died.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from relay.messages import message_from_json
from relay.records import (
    Forget,
    OutboxRow,
    Recording,
    Remember,
    Settlement,
    Status,
    Step,
    Touch,
)
from relay.store import history
from relay.store.db import Db

# ------------------------------------------------------------------ delivery

ROW_COLUMNS = (
    "id, event_source, event_id, event_type, destination, pace_key, template, payload, status, "
    "attempts, created_at, next_attempt_at, last_reason, last_error, step, silence_id"
)
_O_COLUMNS = ", ".join("o." + c.strip() for c in ROW_COLUMNS.split(","))

# The head (oldest undelivered row) of every pacing key: a skip-scan over the distinct keys of
# the index of undelivered rows, then one index probe per key. A backlog of any size costs the
# same.
HEADS = """
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


def row_of(values: Sequence[Any]) -> OutboxRow:
    return OutboxRow(
        id=values[0],
        event_source=values[1],
        event_id=values[2],
        event_type=values[3],
        destination=values[4],
        pace_key=values[5],
        template=values[6],
        message=message_from_json(json.loads(values[7])),
        status=Status(values[8]),
        attempts=values[9],
        created_at=values[10],
        next_attempt_at=values[11],
        last_reason=values[12],
        last_error=values[13],
        step=Step.from_json(json.loads(values[14])) if values[14] else None,
        silence_id=values[15],
    )


# Messages the worker could send now: due, and not behind a head that waits for its retry (a
# chat that is down holds its queue, which is not relay falling behind). Each row costs one probe
# of the index of undelivered rows for its key's head; `limit` bounds the walk.
_SENDABLE = """
SELECT COUNT(*) FROM (
    SELECT 1 FROM outbox o
    WHERE o.status = 'pending' AND o.next_attempt_at <= ?
      AND (SELECT h.next_attempt_at FROM outbox h{open_index}
           WHERE h.pace_key = o.pace_key AND h.status IN ('pending','inflight')
           ORDER BY h.id LIMIT 1) <= ?
    LIMIT ?
) w
"""


def sendable(db: Db, now: float, limit: int) -> int:
    """How many messages wait in the outbox that could be sent now, up to `limit`."""
    (count,) = db.one(_SENDABLE, (now, now, limit))
    return int(count)


def next_due_at(db: Db) -> float | None:
    """When the earliest pending head row (of any key) becomes due."""
    (due,) = db.one(HEADS.replace("<columns>", "MIN(o.next_attempt_at)"))
    return None if due is None else float(due)


def unclaim(db: Db, holder: str, row_ids: Sequence[int]) -> int:
    """Give back claimed messages that were not sent (the run stopped before them): pending
    again, their attempt not counted; only those `holder` still holds."""
    if not row_ids:
        return 0
    among, args = db.among(row_ids)
    return db.count(
        "UPDATE outbox SET status='pending', lease_until=NULL, claimed_by=NULL,"
        f" attempts=attempts-1 WHERE id {among} AND status='inflight' AND claimed_by=?",
        (*args, holder),
    )


# an outcome is written only on a row its writer still holds
_OWN = " WHERE id=? AND status='inflight' AND claimed_by=?"
_RETRY = (
    "UPDATE outbox SET status='pending', next_attempt_at=?, lease_until=NULL,"
    " claimed_by=NULL, last_reason=?, last_error=?" + _OWN
)
# a message sent after failed attempts keeps the last error it overcame
_FINISH = (
    "UPDATE outbox SET status=?, channel_id=?, ts=?, finished_at=?, lease_until=NULL,"
    " claimed_by=NULL, last_reason=?, last_error=COALESCE(?, last_error)" + _OWN
)


def settle(db: Db, holder: str, settlements: Iterable[Settlement]) -> list[Recording]:
    """Record what `holder`'s delivery attempts came to, and what their conversations now
    remember. A row `holder` no longer holds (another replica presumed it dead and took it
    over, or its lease ran out) is left as it is, and so is its conversation: `LOST`.

    A group is written set-wise: which rows `holder` still holds is read once (and locked on
    PostgreSQL, so the writes that follow land), then each statement runs over the whole group
    (`Db.many`); a handful of statements per group instead of five per outcome (`bench/store.py`).
    """
    group = list(settlements)
    ids = [s.row_id for s in group]
    if len(group) == 1 or len(set(ids)) != len(ids):
        # one outcome: its UPDATE says whether the row is still held. (A row twice in a group
        # cannot happen, a claim needing the row pending again; kept correct all the same.)
        return [_settle_one(db, holder, s) for s in group]
    among, args = db.among(ids)
    held = {
        row[0]
        for row in db.all(
            f"SELECT id FROM outbox WHERE id {among} AND status='inflight' AND claimed_by=?"
            " ORDER BY id{lock}",
            (*args, holder),
        )
    }
    recorded = [s for s in group if s.row_id in held]
    db.many(_RETRY, [_retry_args(s, holder) for s in recorded if s.status is Status.PENDING])
    db.many(_FINISH, [_finish_args(s, holder) for s in recorded if s.status is not Status.PENDING])
    for s in group:  # in order: effects on one key's conversation apply as they happened
        if s.pause is not None:  # a rate limit says something about the channel, whoever asks
            pause(db, s.pace_key, s.at, s.pause)
        if s.row_id in held:
            for effect in s.effects:
                _remember(db, s.pace_key, effect, s.at)
    history.record_attempts(db, recorded)
    return [Recording.RECORDED if s.row_id in held else Recording.LOST for s in group]


def _retry_args(s: Settlement, holder: str) -> tuple[Any, ...]:
    return (s.next_attempt_at, s.reason.value, s.error, s.row_id, holder)


def _finish_args(s: Settlement, holder: str) -> tuple[Any, ...]:
    return (s.status.value, s.channel_id, s.ts, s.at, s.reason.value, s.error, s.row_id, holder)


def _settle_one(db: Db, holder: str, s: Settlement) -> Recording:
    if s.status is Status.PENDING:
        written = db.count(_RETRY, _retry_args(s, holder))
    else:
        written = db.count(_FINISH, _finish_args(s, holder))
    if s.pause is not None:
        pause(db, s.pace_key, s.at, s.pause)
    if written != 1:
        return Recording.LOST
    for effect in s.effects:
        _remember(db, s.pace_key, effect, s.at)
    history.record_attempts(db, [s])
    return Recording.RECORDED


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
