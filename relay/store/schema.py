"""relay's database schema, written once for both SQL dialects, and what differs between them.

`MIGRATIONS` is the ordered history of the schema: migration N brings a database from version
N-1 to N. Each script is written once with a few `{tokens}` (`{id}` for an auto-numbered key,
`{real}`, `{blob}`, `{rowid}`) that `Dialect.ddl` fills in for SQLite or PostgreSQL, so both
backends always have the same tables, columns and indexes (a test compares them). Statements
marked `POSTGRES_ONLY` ran only there in a version where SQLite did not need them; later
migrations gave SQLite the same tables, so today's schemas are equal. A migration is never
edited once released: users' databases were built by it.

`Dialect` also carries the SQL fragments the shared store logic (`relay.store.db`) needs in
each dialect: row locking, index hints, the scalar `greatest`.
"""

from __future__ import annotations

from dataclasses import dataclass

POSTGRES_ONLY = "-- postgres only\n"

_PACE = """
    CREATE TABLE IF NOT EXISTS pace (
        key          TEXT PRIMARY KEY,
        tokens       {real} NOT NULL,
        updated      {real} NOT NULL,
        paused_until {real} NOT NULL DEFAULT 0
    )"""
_REPLICAS = """
    CREATE TABLE IF NOT EXISTS replicas (
        holder    TEXT PRIMARY KEY,
        heartbeat {real} NOT NULL
    )"""
_ROUTING_LEASE = """
    CREATE TABLE IF NOT EXISTS routing_lease (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        holder TEXT NOT NULL,
        until  {real} NOT NULL
    )"""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: seen events and the outbox
    (
        """
    CREATE TABLE events (
        source      TEXT NOT NULL,
        id          TEXT NOT NULL,
        type        TEXT NOT NULL,
        received_at {real} NOT NULL,
        PRIMARY KEY (source, id)
    ){rowid}""",
        "CREATE INDEX events_received ON events (received_at)",
        """
    CREATE TABLE outbox (
        id              {id},
        event_source    TEXT NOT NULL,
        event_id        TEXT NOT NULL,
        event_type      TEXT NOT NULL,
        destination     TEXT NOT NULL,
        pace_key        TEXT NOT NULL,
        template        TEXT NOT NULL,
        payload         TEXT NOT NULL,
        status          TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        created_at      {real} NOT NULL,
        next_attempt_at {real} NOT NULL,
        lease_until     {real},
        last_reason     TEXT,
        last_error      TEXT,
        channel_id      TEXT,
        ts              TEXT,
        finished_at     {real}
    )""",
        "CREATE INDEX outbox_head ON outbox (pace_key, status, id)",
        "CREATE INDEX outbox_status ON outbox (status, next_attempt_at)",
    ),
    # 2: conversations (threads, updates, repeats), digests, muted rows; shared pacing
    (
        "ALTER TABLE outbox ADD COLUMN step TEXT",
        """
    CREATE TABLE messages (
        pace_key    TEXT NOT NULL,
        key         TEXT NOT NULL,
        channel_id  TEXT,
        ts          TEXT NOT NULL,
        order_at    {real},
        count       INTEGER NOT NULL DEFAULT 1,
        first_at    {real} NOT NULL,
        last_at     {real} NOT NULL,
        expires_at  {real} NOT NULL,
        PRIMARY KEY (pace_key, key)
    ){rowid}""",
        "CREATE INDEX messages_expiry ON messages (expires_at)",
        """
    CREATE TABLE digest_groups (
        id            {id},
        route         TEXT NOT NULL,
        group_key     TEXT NOT NULL,
        destination   TEXT NOT NULL,
        pace_key      TEXT NOT NULL,
        wait          {real} NOT NULL,
        interval      {real} NOT NULL,
        max_items     INTEGER NOT NULL,
        show          INTEGER NOT NULL,
        flush_at      {real},
        last_flush_at {real},
        UNIQUE (route, group_key, destination)
    )""",
        "CREATE INDEX digest_due ON digest_groups (flush_at)",
        """
    CREATE TABLE digest_items (
        id           {id},
        group_id     {bigint} NOT NULL REFERENCES digest_groups (id),
        event_source TEXT NOT NULL,
        event_id     TEXT NOT NULL,
        event_type   TEXT NOT NULL,
        template     TEXT NOT NULL,
        payload      TEXT NOT NULL,
        created_at   {real} NOT NULL
    )""",
        "CREATE INDEX digest_items_group ON digest_items (group_id, id)",
        POSTGRES_ONLY + _PACE,
    ),
    # 3: the undelivered rows alone, so finding each key's head costs O(keys · log n)
    ("CREATE INDEX outbox_open ON outbox (pace_key, id) WHERE status IN ('pending','inflight')",),
    # 4: accepted events waiting to be routed and rendered (`seq` never repeats, even once the
    # inbox was empty, so it orders acceptances across restarts); which replica routes them
    (
        """
    CREATE TABLE inbox (
        seq         {id},
        source      TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        type        TEXT NOT NULL,
        provider    TEXT NOT NULL,
        created     TEXT,
        text        TEXT,
        body        {blob},
        envelope    TEXT,
        data        TEXT,
        received_at {real} NOT NULL
    )""",
        POSTGRES_ONLY + _ROUTING_LEASE,
    ),
    # 5: which process holds a claim, and each replica's last heartbeat (the database's clock,
    # in epoch seconds); claims of older relays (`claimed_by` NULL) are released by lease only
    ("ALTER TABLE outbox ADD COLUMN claimed_by TEXT", POSTGRES_ONLY + _REPLICAS),
    # 6: one logic for both backends: SQLite paces, leads routing and beats through the same
    # tables as PostgreSQL
    (_PACE, _ROUTING_LEASE, _REPLICAS),
    # 7: history (`store.history`): every routed event with its routing trace (`seq` is its
    # inbox `seq`), each message it made and every delivery attempt, for the console's API
    (
        """
    CREATE TABLE history_events (
        seq         {bigint} PRIMARY KEY,
        source      TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        type        TEXT NOT NULL,
        provider    TEXT NOT NULL,
        created     TEXT,
        text        TEXT,
        body        {blob},
        envelope    TEXT,
        data        TEXT,
        received_at {real} NOT NULL,
        routed_at   {real} NOT NULL,
        routing     TEXT NOT NULL,
        outcome     TEXT NOT NULL
    )""",
        # covering for the overview's counts (per source, type and outcome over a period)
        "CREATE INDEX history_events_received ON history_events"
        " (received_at, source, type, outcome)",
        "CREATE INDEX history_events_event ON history_events (source, event_id)",
        "CREATE INDEX history_events_outcome ON history_events (outcome, seq)",
        """
    CREATE TABLE history_messages (
        id          {id},
        seq         {bigint} NOT NULL,
        outbox_id   {bigint},
        destination TEXT NOT NULL,
        route       TEXT NOT NULL,
        template    TEXT NOT NULL,
        payload     TEXT NOT NULL,
        status      TEXT NOT NULL,
        step        TEXT,
        digest      TEXT,
        created_at  {real} NOT NULL,
        finished_at {real},
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_reason TEXT,
        last_error  TEXT,
        channel_id  TEXT,
        ts          TEXT
    )""",
        "CREATE INDEX history_messages_event ON history_messages (seq)",
        "CREATE INDEX history_messages_outbox ON history_messages (outbox_id)",
        "CREATE INDEX history_messages_destination ON history_messages (destination, seq)",
        "CREATE INDEX history_messages_created ON history_messages"
        " (created_at, destination, status, finished_at)",
        """
    CREATE TABLE history_attempts (
        id              {id},
        message_id      {bigint} NOT NULL,
        at              {real} NOT NULL,
        status          TEXT NOT NULL,
        reason          TEXT NOT NULL,
        error           TEXT,
        took            {real},
        next_attempt_at {real}
    )""",
        "CREATE INDEX history_attempts_message ON history_attempts (message_id, id)",
    ),
    # 8: silences (relay.silences), and the silence that held back each silenced message
    (
        """
    CREATE TABLE silences (
        id          TEXT PRIMARY KEY,
        matchers    TEXT NOT NULL,
        destination TEXT,
        message_key TEXT,
        starts_at   {real} NOT NULL,
        ends_at     {real} NOT NULL,
        comment     TEXT NOT NULL,
        created_by  TEXT NOT NULL,
        created_at  {real} NOT NULL
    )""",
        "CREATE INDEX silences_ends ON silences (ends_at)",
        "ALTER TABLE outbox ADD COLUMN silence_id TEXT",
        "ALTER TABLE history_messages ADD COLUMN silence_id TEXT",
    ),
    # 9: the pruner asks of every old event id whether a message of it is still open; without
    # this index each question scanned the open rows (quadratic: minutes of a held store
    # thread with thousands queued, as during a chat's outage)
    (
        "CREATE INDEX outbox_open_event ON outbox (event_source, event_id)"
        " WHERE status IN ('pending','inflight')",
    ),
    # 10: the signatures of the Slack requests relay acted on (relay.interactions): a replay
    # within the signature's tolerance is refused by every replica
    (
        """
    CREATE TABLE slack_requests (
        signature TEXT PRIMARY KEY,
        seen_at   {real} NOT NULL
    )""",
        "CREATE INDEX slack_requests_seen ON slack_requests (seen_at)",
    ),
    # 11: failed console logins per client address (relay.console.throttle), counted by every
    # replica together
    (
        """
    CREATE TABLE login_failures (
        client TEXT NOT NULL,
        at     {real} NOT NULL
    )""",
        "CREATE INDEX login_failures_client ON login_failures (client, at)",
        "CREATE INDEX login_failures_at ON login_failures (at)",
    ),
    # 12: the outbox's first index served nothing that the index of undelivered rows (3) does
    # not, while every message paid for it, pending, claimed and sent: bench/store.py spent
    # about 8% less CPU per message without it (the README's figures)
    ("DROP INDEX outbox_head",),
)

VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class Dialect:
    """What differs between SQLite and PostgreSQL, as DDL types and SQL fragments."""

    name: str
    id: str  # an auto-numbered primary key whose numbers are never reused
    real: str
    blob: str
    bigint: str
    rowid: str  # a table clustered on its primary key
    greatest: str  # the scalar maximum of its arguments
    skip_locked: str  # take the selected rows, skipping those another transaction holds
    lock: str  # take the selected rows, waiting for them
    open_index: str  # read the index of undelivered rows (SQLite's planner needs the hint)
    by_id: str  # find a table's rows by their ids (SQLite's planner would scan an index)
    epoch_now: str  # the database's clock at the transaction's start, in epoch seconds
    epoch_clock: str  # the database's clock as the statement runs, in epoch seconds
    for_share: str  # lock the selected rows against updates, sharing them with readers

    def ddl(self, statement: str) -> str | None:
        """A migration statement in this dialect, or None when it is not for this dialect."""
        if statement.startswith(POSTGRES_ONLY) and self.name != "postgresql":
            return None
        return statement.format(
            id=self.id, real=self.real, blob=self.blob, bigint=self.bigint, rowid=self.rowid
        )

    def tokens(self) -> dict[str, str]:
        """The fragments a shared SQL statement may name as `{greatest}`, `{skip_locked}`..."""
        return {
            "greatest": self.greatest,
            "skip_locked": self.skip_locked,
            "lock": self.lock,
            "open_index": self.open_index,
            "by_id": self.by_id,
            "epoch_now": self.epoch_now,
            "epoch_clock": self.epoch_clock,
            "for_share": self.for_share,
        }


SQLITE = Dialect(
    name="sqlite",
    id="INTEGER PRIMARY KEY AUTOINCREMENT",
    real="REAL",
    blob="BLOB",
    bigint="INTEGER",
    rowid=" WITHOUT ROWID",
    greatest="MAX",
    # one writer at a time: a transaction that writes holds the whole database already
    skip_locked="",
    lock="",
    open_index=" INDEXED BY outbox_open",
    # without statistics it reads `WHERE id IN (...) AND status='pending'` through the status
    # index: every pending row, for a run of a few
    by_id=" NOT INDEXED",
    epoch_now="((julianday('now') - 2440587.5) * 86400.0)",
    epoch_clock="((julianday('now') - 2440587.5) * 86400.0)",
    for_share="",
)

POSTGRES = Dialect(
    name="postgresql",
    id="BIGSERIAL PRIMARY KEY",
    real="DOUBLE PRECISION",
    blob="BYTEA",
    bigint="BIGINT",
    rowid="",
    greatest="GREATEST",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    lock=" FOR UPDATE",
    open_index="",
    by_id="",
    epoch_now="EXTRACT(EPOCH FROM now())",
    epoch_clock="EXTRACT(EPOCH FROM clock_timestamp())",
    for_share=" FOR SHARE",
)
