"""The store's logic for claims: which messages the worker sends next, taken for it in one
transaction. The due head of each channel, then as many of the messages behind it as its pacing
tokens allow (one spent per message), in order, with what the conversation remembers of the
messages their steps name; replicas on PostgreSQL never take the same key at once (its `pace`
row is locked, and one held by another is skipped).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from relay.records import Claim, ClaimRound, Known, MessageRef, OutboxRow, Status
from relay.store.db import Db
from relay.store.outbox import HEADS, ROW_COLUMNS, row_of, unclaim
from relay.store.pacing import Bucket, refill, spend, wait

# Every pending head, as little of it as a claim decides on: which to claim (the due ones,
# oldest first) and when the next of the others is due come from one walk over the keys.
_HEADS = HEADS.replace("<columns>", "o.id, o.pace_key, o.next_attempt_at") + " ORDER BY o.id"


def claim(
    db: Db,
    holder: str,
    now: float,
    lease_until: float,
    rate: float,
    burst: float,
    limit: int,
    busy: Collection[str] = (),
    paces: Mapping[str, tuple[float, float]] | None = None,
    run: int = 1,
) -> ClaimRound:
    """Claim for `holder` the due heads of up to `limit` keys whose pacing allows a message
    now, and after each head up to `run - 1` of the key's next messages that are due, as far
    as the key's tokens go (one spent per message); with each run, the conversation messages
    its steps may need. Keys in `busy` are skipped: the worker still sends on them (a claim it
    made whose lease ran out meanwhile would otherwise be taken again under its own send).

    The runs of all the keys cost the same few statements whatever their number and length
    (`_claim_keys`)."""
    claimed: list[Claim] = []
    waits: list[float] = []
    heads = db.all(_HEADS)
    looked = [(i, key) for i, key, due in heads if due <= now and key not in busy]
    key_paces = {key: (paces or {}).get(key, (rate, burst)) for _i, key in looked}
    taken: set[int] = set()
    start = 0
    # the due heads oldest first, as many keys at a time as may still be claimed: one look,
    # unless some of them cannot be (paced, held by another replica, changed meanwhile)
    while len(claimed) < limit and start < len(looked):
        part = looked[start : start + limit - len(claimed)]
        start += len(part)
        keys = [key for _i, key in part]
        runs = _claim_keys(db, holder, keys, now, lease_until, key_paces, run, waits)
        for head_id, key in part:
            if key in runs:
                taken.add(head_id)
                claimed.append(runs[key])
    # when the earliest head left pending is due (the worker looks again then, if later)
    later = [due for head_id, _key, due in heads if head_id not in taken]
    return ClaimRound(tuple(claimed), min(waits) if waits else None, min(later, default=None))


# A key's pacing bucket, taken for this transaction (locked on PostgreSQL); a key another
# replica is claiming on is skipped, not waited for.
_BUCKETS = "SELECT key, tokens, updated, paused_until FROM pace WHERE key <keys>{skip_locked}"


def _buckets(db: Db, burst: Mapping[str, float], now: float) -> dict[str, Bucket]:
    """The pacing buckets of the keys in `burst`, taken for this transaction; a key's first
    claim makes its bucket, full (`burst`). A key another replica holds is left out."""
    keys = list(burst)
    found = {row[0]: Bucket(*row[1:]) for row in _take(db, keys)}
    new = [key for key in keys if key not in found]
    if new:  # a key's first claim (or a key another replica holds: left out again below)
        db.many(
            "INSERT INTO pace (key, tokens, updated) VALUES (?,?,?) ON CONFLICT DO NOTHING",
            [(key, burst[key], now) for key in new],
        )
        found.update((row[0], Bucket(*row[1:])) for row in _take(db, new))
    return found


def _take(db: Db, keys: Sequence[str]) -> list[Any]:
    among, args = db.among(keys)
    return db.all(_BUCKETS.replace("<keys>", among), args)


# The first undelivered messages of a key, its head first: read while the claim holds the
# key's pace row (locked on PostgreSQL, the one writer on SQLite), so no other claim can take
# them meanwhile. One statement reads those of every key a claim looks at, each key's part an
# index range of its own (`UNION ALL` of one part per key: a window over the keys would read
# every undelivered message of each). On PostgreSQL the keys and their lengths are two array
# parameters, one part per element: the same statement for any number of keys, planned once
# (`Db.among`).
_OPEN = (
    "SELECT * FROM (SELECT o.id, o.pace_key, o.status, o.next_attempt_at FROM outbox o{open_index}"
    " WHERE o.pace_key=? AND o.status IN ('pending','inflight') ORDER BY o.id LIMIT ?) AS k"
)
_OPEN_EACH = (
    "SELECT k.* FROM unnest(?::text[], ?::bigint[]) AS w(pace_key, n) CROSS JOIN LATERAL"
    " (SELECT o.id, o.pace_key, o.status, o.next_attempt_at FROM outbox o"
    " WHERE o.pace_key=w.pace_key AND o.status IN ('pending','inflight') ORDER BY o.id"
    " LIMIT w.n) AS k ORDER BY k.id"
)


def _open(db: Db, most: Mapping[str, int]) -> list[Any]:
    """The first `most[key]` undelivered messages of each key: id, key, status, due time."""
    if db.dialect.name == "postgresql":
        return db.all(_OPEN_EACH, (list(most), list(most.values())))
    return db.all(" UNION ALL ".join([_OPEN] * len(most)), [x for kv in most.items() for x in kv])


# A claim takes a row only if it is still pending and due (another replica may have just sent
# it or scheduled a retry; a row another transaction is writing is skipped) and no older row of
# its key is undelivered but those claimed with it (head-of-line order); the rows come back as
# claimed.
_CLAIM_RUNS = (
    "UPDATE outbox{by_id} SET status='inflight', lease_until=?, claimed_by=?,"
    " attempts=attempts+1 WHERE id IN (SELECT id FROM outbox{by_id} WHERE id <ids>"
    " AND status='pending' AND next_attempt_at <= ?{skip_locked})"
    " AND NOT EXISTS (SELECT 1 FROM outbox o{open_index} WHERE o.pace_key=outbox.pace_key"
    " AND o.status IN ('pending','inflight') AND o.id < outbox.id AND o.id <not ids>)"
    " RETURNING " + ROW_COLUMNS
)


def _claim_keys(
    db: Db,
    holder: str,
    keys: Sequence[str],
    now: float,
    lease_until: float,
    paces: Mapping[str, tuple[float, float]],
    run: int,
    waits: list[float],
) -> dict[str, Claim]:
    """Claim for `holder` a run of each of `keys` whose pacing allows a message now: up to
    `run` messages from its head on, each pending and due, up to the first that is not (order
    holds: nothing jumps a message that waits), as far as its tokens go (one spent per
    message). A key that must wait adds its wait to `waits`.

    Every key in the same few statements, whatever their number (their buckets, their first
    messages, the claim, the buckets spent, the conversation messages): one key at a time took
    four or five per key, each a round trip to PostgreSQL (`bench/store.py`)."""
    buckets = _buckets(db, {key: paces[key][1] for key in keys}, now)
    most: dict[str, int] = {}
    refilled: dict[str, Bucket] = {}
    for key in keys:
        if key not in buckets:
            continue
        key_rate, key_burst = paces[key]
        bucket = refill(buckets[key], now, key_rate, key_burst)
        seconds = wait(bucket, now, key_rate)
        if seconds > 0:
            waits.append(seconds)
            continue
        refilled[key] = bucket
        most[key] = min(run, int(bucket.tokens))
    if not most:
        return {}
    ids: dict[str, list[int]] = {key: [] for key in most}
    stopped: set[str] = set()
    for row_id, pace_key, status, due in _open(db, most):
        if pace_key in stopped:
            continue
        if status != Status.PENDING.value or due > now:
            stopped.add(pace_key)
            continue
        ids[pace_key].append(row_id)
    wanted = [i for key_ids in ids.values() for i in key_ids]
    if not wanted:
        return {}
    among, args = db.among(wanted)
    not_among, not_args = db.among(wanted, negate=True)
    found = db.all(
        _CLAIM_RUNS.replace("<ids>", among).replace("<not ids>", not_among),
        (lease_until, holder, *args, now, *not_args),
    )
    by_key: dict[str, list[OutboxRow]] = {}
    for values in found:
        row = row_of(values)
        by_key.setdefault(row.pace_key, []).append(row)
    runs: dict[str, list[OutboxRow]] = {}
    back: list[int] = []
    for key, rows in by_key.items():
        rows.sort(key=lambda r: r.id)
        # all of them, unless another replica changed one since it was read: the run then
        # stops before it, and what was claimed after it goes back
        kept = next((i for i, r in enumerate(rows) if r.id != ids[key][i]), len(rows))
        back += [r.id for r in rows[kept:]]
        if kept:
            runs[key] = rows[:kept]
    unclaim(db, holder, back)
    spent = {key: spend(refilled[key], len(rows)) for key, rows in runs.items()}
    db.many(
        "UPDATE pace SET tokens=?, updated=? WHERE key=?",
        [(b.tokens, b.updated, key) for key, b in spent.items()],
    )
    known = _known(db, runs, now)
    return {key: Claim(tuple(rows), known.get(key, {})) for key, rows in runs.items()}


def _known(
    db: Db, runs: Mapping[str, Sequence[OutboxRow]], now: float
) -> dict[str, dict[str, Known]]:
    """What the conversations of the runs' steps remember, by pacing key and message key."""
    wanted = {
        # Step.keys(): the message keys a step names (a method of Step, not of a mapping)
        (pace_key, key)
        for pace_key, rows in runs.items()
        for row in rows
        if row.step is not None
        for key in row.step.keys()  # noqa: SIM118
    }
    if not wanted:
        return {}
    among_paces, pace_keys = db.among(sorted({p for p, _ in wanted}))
    among_keys, keys = db.among(sorted({k for _, k in wanted}))
    known: dict[str, dict[str, Known]] = {}
    for found in db.all(
        "SELECT pace_key, key, channel_id, ts, order_at, count, first_at, last_at, expires_at"
        f" FROM messages WHERE pace_key {among_paces} AND key {among_keys} AND expires_at > ?",
        (*pace_keys, *keys, now),
    ):
        if (found[0], found[1]) in wanted:
            known.setdefault(found[0], {})[found[1]] = Known(MessageRef(*found[2:8]), found[8])
    return known
