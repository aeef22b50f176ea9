"""The two backends' schemas are the same, and a database written by an earlier relay upgrades
in place with everything it held: queued messages, dedup ids, threads, digests, the inbox.

The upgrade fixtures (`tests/fixtures/upgrade/schema5.*`) were written by relay as it was before
both backends shared one store logic (schema 5): a SQLite file, and a pg_dump of a PostgreSQL
schema.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import psycopg
import pytest
from oldschema import store_at, store_from_fixture

from relay.conversation.moves import MoveKind, move
from relay.event import Event
from relay.records import Acceptance, Recording, Status
from relay.store import PostgresStore
from relay.store.schema import VERSION
from relay.store.sqlite import migrate
from relay.store.upkeep import FORGET_EVENTS

# the same kinds of values under each dialect's names
_TYPES = {
    "integer": "integer",
    "bigint": "integer",
    "real": "real",
    "double precision": "real",
    "text": "text",
    "blob": "blob",
    "bytea": "blob",
}

Schema = dict[str, set[tuple[str, ...]]]


def sqlite_schema(path: Path) -> Schema:
    db = sqlite3.connect(path)
    tables = [
        name
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        if name != "sqlite_sequence"
    ]
    schema: Schema = {"columns": set(), "keys": set(), "indexes": set()}
    for table in tables:
        for _cid, name, kind, notnull, _default, pk in db.execute(f"PRAGMA table_info({table})"):
            # a primary key column is NOT NULL on PostgreSQL whatever its declaration says
            schema["columns"].add((table, name, _TYPES[kind.lower()], str(bool(notnull or pk))))
            if pk:
                schema["keys"].add((table, name))
        for _seq, index, unique, origin, _partial in db.execute(f"PRAGMA index_list({table})"):
            if origin != "c":  # made for a primary key or a UNIQUE constraint
                continue
            columns = ",".join(row[2] for row in db.execute(f"PRAGMA index_info({index})"))
            schema["indexes"].add((table, index, columns, str(bool(unique))))
    db.close()
    return schema


def postgres_schema(url: str) -> Schema:
    schema: Schema = {"columns": set(), "keys": set(), "indexes": set()}
    with psycopg.connect(url) as conn:
        for table, name, kind, nullable in conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name <> 'relay_schema'"
        ):
            schema["columns"].add((table, name, _TYPES[kind], str(nullable == "NO")))
        for table, name in conn.execute(
            "SELECT tc.table_name, kcu.column_name FROM information_schema.table_constraints tc"
            " JOIN information_schema.key_column_usage kcu"
            " ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema"
            " WHERE tc.table_schema = current_schema() AND tc.constraint_type = 'PRIMARY KEY'"
            " AND tc.table_name <> 'relay_schema'"
        ):
            schema["keys"].add((table, name))
        for table, index, definition in conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = current_schema() AND indexname NOT LIKE '%\\_pkey'"
            " AND indexname NOT LIKE '%\\_key'"
        ):
            columns = re.search(r"\((.*?)\)", definition)
            assert columns is not None, definition
            names = ",".join(c.strip() for c in columns.group(1).split(","))
            schema["indexes"].add((table, index, names, str("UNIQUE" in definition)))
    return schema


def test_sqlite_and_postgresql_have_the_same_tables_columns_keys_and_indexes(
    tmp_path: Path, pg_url: str
) -> None:
    db = sqlite3.connect(tmp_path / "relay.db", isolation_level=None)
    assert migrate(db) == VERSION
    db.close()

    async def open_postgres() -> None:
        store = PostgresStore(pg_url)
        await store.open()
        await store.close()

    import asyncio

    asyncio.run(open_postgres())
    lite, pg = sqlite_schema(tmp_path / "relay.db"), postgres_schema(pg_url)
    assert lite["columns"] == pg["columns"]
    assert lite["keys"] == pg["keys"]
    assert lite["indexes"] == pg["indexes"]
    assert {c[0] for c in lite["columns"]} >= {"events", "outbox", "inbox", "messages", "pace"}


# ---------------------------------------------------------------- upgrading in place


def event(i: int) -> Event:
    return Event("anchor", "anchor", f"evt_{i}", "task.failed", {"session_id": "ses_1"})


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_database_written_before_the_shared_store_upgrades_with_everything_it_held(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = store_from_fixture("schema5", backend, tmp_path, request)
    await store.open()
    try:
        assert await store.migrate() == VERSION
        # every id it had accepted is still known
        for i in range(1, 8):
            assert await store.receive(event(i), 2000.0) is Acceptance.DUPLICATE
        assert [r.event.id for r in await store.inbox(10)] == ["evt_7"]
        rows = {
            status: [r.event_id for r in await store.rows(status)]
            for status in (Status.SENT, Status.PENDING, Status.DEAD, Status.INFLIGHT, Status.MUTED)
        }
        assert rows == {
            Status.SENT: ["evt_1"],
            Status.PENDING: ["evt_2"],
            Status.DEAD: ["evt_3"],
            Status.INFLIGHT: ["evt_4"],
            Status.MUTED: ["evt_5"],
        }
        (dead,) = await store.rows(Status.DEAD)
        assert (dead.last_reason, dead.last_error) == ("channel", "channel_not_found")
        # the claim left in flight by the old process comes back (SQLite: at start-up; with
        # replicas: once its lease ran out, its holder being unknown)
        await store.release_orphans(100_000.0)
        found = await store.claim(100_000.0, 100_060.0, rate=100.0, burst=100.0, limit=10)
        claimed = {c.row.event_id: c for c in found.claimed}
        assert set(claimed) == {"evt_2", "evt_4"}
        # the queued reply still finds its thread's parent, posted before the upgrade
        reply = claimed["evt_2"]
        planned = move(reply.row, reply.refs, 100_000.0)
        assert planned.kind is MoveKind.REPLY
        assert planned.out.reply_to is not None
        assert planned.out.reply_to.ts == "1700000000.000100"
        assert reply.row.message.text == "queued reply"
        # the digest item still waits in its group, and flushes when due
        (batch,) = await store.due_digests(100_000.0)
        assert [(i.event_id, i.message.line) for i in batch.items] == [("evt_6", "grouped")]
        for claim in claimed.values():
            settled = await store.settle(_sent(claim.row.id, claim.row.pace_key))
            assert settled is Recording.RECORDED
    finally:
        await store.close()


def _sent(row_id: int, pace_key: str):  # type: ignore[no-untyped-def]
    from relay.records import Reason, Settlement

    return Settlement(row_id, pace_key, Status.SENT, Reason.OK, 100_001.0, ts="1.2")


# before migration 9: one open message of an old event, one delivered, and a recent event
BEFORE_THE_OPEN_INDEX = [
    (
        "INSERT INTO events (source, id, type, received_at) VALUES"
        " ('anchor', 'evt_open', 't', 10.0), ('anchor', 'evt_done', 't', 10.0),"
        " ('anchor', 'evt_new', 't', 990.0)",
        (),
    ),
    (
        "INSERT INTO outbox (event_source, event_id, event_type, destination, pace_key,"
        " template, payload, status, created_at, next_attempt_at, finished_at) VALUES"
        " ('anchor', 'evt_open', 't', 'd', 'k', 'x', '{}', 'pending', 10.0, 10.0, NULL),"
        " ('anchor', 'evt_done', 't', 'd', 'k', 'x', '{}', 'sent', 10.0, 10.0, 11.0)",
        (),
    ),
]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_after_the_upgrade_the_pruner_forgets_delivered_ids_and_keeps_open_ones(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = store_at(8, backend, tmp_path, request, BEFORE_THE_OPEN_INDEX)
    await store.open()
    try:
        assert await store.migrate() == VERSION
        await store.prune(1000.0, dedup_ttl=100.0, keep_sent=100.0)
        again = {
            name: await store.receive(Event("anchor", "anchor", name, "task.failed", {}), 1000.0)
            for name in ("evt_open", "evt_done", "evt_new")
        }
        assert again == {
            "evt_open": Acceptance.DUPLICATE,  # still undelivered: its id is kept
            "evt_done": Acceptance.ACCEPTED,  # delivered long ago: forgotten
            "evt_new": Acceptance.DUPLICATE,  # within dedup_ttl
        }
    finally:
        await store.close()


def test_the_pruner_asks_the_index_whether_an_event_is_still_open(tmp_path: Path) -> None:
    # one lookup per old id, not a scan of the open rows per id (quadratic: with thousands of
    # messages queued during an outage, pruning held the store's thread for minutes)
    db = sqlite3.connect(tmp_path / "relay.db")
    migrate(db)
    plan = " | ".join(
        row[3] for row in db.execute("EXPLAIN QUERY PLAN " + FORGET_EVENTS, (0.0, 0.0))
    )
    assert "USING INDEX outbox_open_event (event_source=? AND event_id=?)" in plan, plan
