"""The store conformance suite: atomic accept + dedup, head-of-line claims per key, retries,
dead letters, conversation keys and digests, run against SQLite and the real PostgreSQL server;
then what is specific to each backend (migrations, URLs, leases and pacing across replicas)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from inbox import accept

from relay.event import Event
from relay.messages import Blocks
from relay.records import (
    Acceptance,
    GroupSpec,
    InboxStats,
    NewMessage,
    OutboxRow,
    Reason,
    Received,
    Recording,
    Routed,
    Settlement,
    Status,
    Step,
)
from relay.render.formats.slack import payload
from relay.store import PostgresStore, SqliteStore, Store, open_store
from relay.store.postgres import redact
from relay.store.schema import MIGRATIONS, POSTGRES, SQLITE, VERSION, Dialect
from relay.store.sqlite import migrate, sqlite_path


def ev(event_id: str, source: str = "anchor") -> Event:
    return Event(source=source, provider="anchor", id=event_id, type="task.failed", data={})


def msg(dest: str, key: str, text: str = "hi") -> NewMessage:
    return NewMessage(dest, key, "anchor/task.failed", Blocks(text))


def routed(received: Received, *messages: NewMessage) -> list[Routed]:
    return [Routed(received, messages)]


async def claim_all(
    store: Store, now: float, *, rate: float = 1000.0, burst: float = 1000.0, lease: float = 60.0
) -> list[OutboxRow]:
    """Claim every due head that pacing allows, as the worker does at one look."""
    found = await store.claim(now, now + lease, rate=rate, burst=burst, limit=100)
    return [c.row for c in found.claimed]


def sent(row: OutboxRow, now: float) -> Settlement:
    return Settlement(row.id, row.pace_key, Status.SENT, Reason.OK, now, channel_id="C1", ts="1.1")


def retry(row: OutboxRow, at: float, now: float = 100.0) -> Settlement:
    return Settlement(
        row.id, row.pace_key, Status.PENDING, Reason.RATE_LIMITED, now, "ratelimited",
        next_attempt_at=at,
    )  # fmt: skip


def dead(row: OutboxRow, now: float) -> Settlement:
    return Settlement(row.id, row.pace_key, Status.DEAD, Reason.CHANNEL, now, "channel_not_found")


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s: Store = SqliteStore(tmp_path / "relay.db")
    else:
        url = request.getfixturevalue("pg_url")
        s = open_store(url, tmp_path)
        assert isinstance(s, PostgresStore)
    await s.open()
    yield s
    await s.close()


async def test_duplicate_event_enqueues_nothing(store: Store) -> None:
    assert (
        await accept(store, ev("e1"), [msg("alerts", "slack:alerts")], 100.0) is Acceptance.ACCEPTED
    )
    assert (
        await accept(store, ev("e1"), [msg("alerts", "slack:alerts")], 101.0)
        is Acceptance.DUPLICATE
    )
    # the same id from another source is another event
    assert await accept(store, ev("e1", "deck"), [], 101.0) is Acceptance.ACCEPTED
    assert len(await store.rows(Status.PENDING)) == 1


async def test_a_received_event_waits_in_the_inbox_whole_until_enqueued(store: Store) -> None:
    event = Event(
        source="anchor",
        provider="anchor",
        id="e1",
        type="task.failed",
        data={"task_id": "tsk_1", "error": {"message": "boom ✓"}},
        created=datetime(2025, 5, 24, 12, 18, tzinfo=UTC),
        text="task failed",
        envelope={"id": "e1", "data": {"task_id": "tsk_1"}},
    )
    assert await store.receive(event, 100.0) is Acceptance.ACCEPTED
    assert await store.receive(event, 101.0) is Acceptance.DUPLICATE
    assert await store.receive(ev("e2"), 102.0) is Acceptance.ACCEPTED
    waiting = await store.inbox(10)
    assert [(r.event, r.received_at) for r in waiting] == [(event, 100.0), (ev("e2"), 102.0)]
    assert waiting[0].seq < waiting[1].seq
    assert await store.inbox_stats() == InboxStats(waiting=2, oldest_at=100.0)
    assert await store.rows(Status.PENDING) == []  # nothing is queued before routing

    # the messages are created at the time the event was received; it leaves the inbox
    assert await store.enqueue(routed(waiting[0], msg("alerts", "k"))) == {waiting[0].seq}
    assert [(r.event_id, r.created_at) for r in await store.rows(Status.PENDING)] == [("e1", 100.0)]
    assert [r.event.id for r in await store.inbox(10)] == ["e2"]
    # a second router with the same event writes nothing
    assert await store.enqueue(routed(waiting[0], msg("alerts", "k"))) == set()
    assert len(await store.rows(Status.PENDING)) == 1
    # an event routed nowhere simply leaves
    assert await store.enqueue(routed(waiting[1])) == {waiting[1].seq}
    assert await store.inbox_stats() == InboxStats(waiting=0, oldest_at=None)


async def test_inbox_order_never_repeats_even_after_it_emptied(store: Store) -> None:
    assert await store.last_seq() == 0
    await store.receive(ev("e1"), 1.0)
    first = await store.inbox(1)
    await store.enqueue(routed(first[0]))
    assert await store.last_seq() == first[0].seq
    await store.receive(ev("e2"), 2.0)
    (second,) = await store.inbox(1)
    assert second.seq > first[0].seq and await store.last_seq() == second.seq


async def test_events_left_in_the_inbox_survive_reopening(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "relay.db")
    await first.open()
    await first.receive(ev("e1"), 100.0)
    await first.close()  # as if relay stopped before routing it
    second = SqliteStore(tmp_path / "relay.db")
    await second.open()
    assert [r.event.id for r in await second.inbox(10)] == ["e1"]
    assert await second.receive(ev("e1"), 101.0) is Acceptance.DUPLICATE
    await second.close()


async def test_prune_keeps_the_ids_of_events_still_waiting(store: Store) -> None:
    await accept(store, ev("done"), [], 0.0)
    await store.receive(ev("waiting"), 10.0)
    await accept(store, ev("later"), [], 20.0)  # after the oldest waiting one: kept too
    assert await store.prune(now=100_000.0, dedup_ttl=86_400.0, keep_sent=86_400.0) == (1, 0)
    assert [await store.seen("anchor", e) for e in ("done", "waiting", "later")] == [
        False,
        True,
        True,
    ]
    (waiting,) = await store.inbox(1)
    await store.enqueue(routed(waiting))
    assert await store.prune(now=100_000.0, dedup_ttl=86_400.0, keep_sent=86_400.0) == (2, 0)


async def test_dedup_survives_reopening(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "relay.db")
    await first.open()
    await accept(first, ev("e1"), [msg("alerts", "k")], 100.0)
    await first.close()
    second = SqliteStore(tmp_path / "relay.db")
    await second.open()
    assert await accept(second, ev("e1"), [msg("alerts", "k")], 200.0) is Acceptance.DUPLICATE
    assert [r.event_id for r in await second.rows(Status.PENDING)] == ["e1"]
    await second.close()


async def test_only_the_head_of_each_key_is_due(store: Store) -> None:
    await accept(
        store,
        ev("e1"),
        [msg("alerts", "slack:alerts", "1"), msg("events", "slack:events", "1")],
        100.0,
    )
    await accept(store, ev("e2"), [msg("alerts", "slack:alerts", "2")], 100.0)
    heads = await claim_all(store, 100.0)
    assert [(h.pace_key, h.message.text, h.status, h.attempts) for h in heads] == [
        ("slack:alerts", "1", Status.INFLIGHT, 1),
        ("slack:events", "1", Status.INFLIGHT, 1),
    ]
    # while a key's head is in flight nothing else on that key is due
    assert await claim_all(store, 100.0) == []
    await store.settle(sent(heads[0], 101.0))
    assert [h.message.text for h in await claim_all(store, 101.0)] == ["2"]


async def test_retry_keeps_order_and_waits(store: Store) -> None:
    await accept(store, ev("e1"), [msg("alerts", "k", "1")], 100.0)
    await accept(store, ev("e2"), [msg("alerts", "k", "2")], 100.0)
    (head,) = await claim_all(store, 100.0)
    await store.settle(retry(head, 130.0))
    assert await claim_all(store, 120.0) == []  # the second message waits behind the first
    assert await store.next_due_at() == 130.0
    again = await claim_all(store, 130.0)
    assert [(r.message.text, r.attempts, r.last_reason) for r in again] == [
        ("1", 2, "rate_limited")
    ]


async def test_a_claim_spends_its_keys_budget_and_a_429_pauses_only_that_key(
    store: Store,
) -> None:
    for i in range(5):
        await accept(store, ev(f"e{i}"), [msg("alerts", "slack:alerts", str(i))], 100.0)
    await accept(store, ev("other"), [msg("events", "slack:events")], 100.0)

    async def send_next(now: float) -> tuple[list[str], float | None]:
        found = await store.claim(now, now + 60.0, rate=1.0, burst=2.0, limit=10)
        texts = []
        for claim in found.claimed:
            if claim.row.pace_key == "slack:alerts":
                texts.append(claim.row.message.text)
            await store.settle(sent(claim.row, now))
        return texts, found.paced_wait

    assert [await send_next(100.0) for _ in range(2)] == [(["0"], None), (["1"], None)]
    texts, wait = await send_next(100.5)
    assert texts == [] and wait == pytest.approx(0.5)
    assert await send_next(101.0) == (["2"], None)
    # Slack said 429, Retry-After 30, to the next message
    (head,) = await claim_all(store, 102.0, rate=1.0, burst=2.0)
    rate_limited = retry(head, 132.0, now=102.0)
    await store.settle(dataclasses.replace(rate_limited, pause=30.0))
    found = await store.claim(110.0, 170.0, rate=1.0, burst=2.0, limit=10)
    assert found.claimed == () and found.paced_wait is None  # the head waits for its retry
    found = await store.claim(132.0, 190.0, rate=1.0, burst=2.0, limit=10)
    assert [c.row.message.text for c in found.claimed] == ["3"]


async def test_a_paused_key_waits_and_other_keys_flow(store: Store) -> None:
    await accept(store, ev("e1"), [msg("alerts", "slack:alerts")], 100.0)
    await accept(store, ev("e2"), [msg("events", "slack:events")], 100.0)
    (first, other) = await claim_all(store, 100.0, rate=1.0, burst=3.0)
    await store.settle(Settlement(
        first.id, first.pace_key, Status.PENDING, Reason.RATE_LIMITED, 101.0,
        next_attempt_at=101.0, pause=30.0,
    ))  # fmt: skip
    await store.settle(sent(other, 101.0))
    found = await store.claim(110.0, 170.0, rate=1.0, burst=3.0, limit=10)
    assert found.claimed == () and found.paced_wait == pytest.approx(21.0)


async def test_dead_letters_list_replay_drop(store: Store) -> None:
    await accept(store, ev("e1"), [msg("alerts", "k")], 100.0)
    await accept(store, ev("e2"), [msg("alerts", "k2")], 100.0)
    for row in await claim_all(store, 100.0):
        await store.settle(dead(row, 101.0))
    dead_rows = await store.rows(Status.DEAD)
    assert [(d.last_reason, d.last_error) for d in dead_rows] == [
        ("channel", "channel_not_found")
    ] * 2
    assert await store.replay_dead([dead_rows[0].id], 300.0) == 1
    assert [r.event_id for r in await claim_all(store, 300.0)] == ["e1"]
    assert await store.drop_dead(None) == 1
    assert await store.rows(Status.DEAD) == []


async def test_orphaned_inflight_rows_come_back(store: Store) -> None:
    await accept(store, ev("e1"), [msg("alerts", "k")], 100.0)
    (row,) = await claim_all(store, 100.0, lease=60.0)
    assert await store.release_expired(150.0) == 0
    assert await store.release_expired(161.0) == 1
    assert [r.id for r in await claim_all(store, 161.0)] == [row.id]


async def test_prune_forgets_old_ids_but_not_undelivered_ones(store: Store) -> None:
    await accept(store, ev("old-sent"), [msg("a", "k1")], 0.0)
    await accept(store, ev("old-pending"), [msg("a", "k2")], 0.0)
    head = next(r for r in await claim_all(store, 0.0) if r.event_id == "old-sent")
    await store.settle(sent(head, 1.0))
    events, rows = await store.prune(now=100_000.0, dedup_ttl=86_400.0, keep_sent=86_400.0)
    assert (events, rows) == (1, 1)
    assert not await store.seen("anchor", "old-sent")
    assert await store.seen("anchor", "old-pending")


async def test_stats_per_destination(store: Store) -> None:
    await accept(store, ev("e1"), [msg("alerts", "k1"), msg("events", "k2")], 100.0)
    await accept(store, ev("e2"), [msg("alerts", "k1")], 105.0)
    stats = {s.destination: s for s in await store.stats()}
    assert (stats["alerts"].pending, stats["alerts"].oldest_pending_at) == (2, 100.0)
    assert stats["events"].pending == 1


def test_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    assert migrate(db) == len(MIGRATIONS)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert migrate(db) == len(MIGRATIONS)  # second run applies nothing and does not fail
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"events", "outbox"} <= tables


def test_database_url_forms(tmp_path: Path) -> None:
    assert sqlite_path(None, tmp_path) == tmp_path / "data" / "relay.db"
    assert sqlite_path("sqlite:///var/lib/relay.db", tmp_path) == Path("/var/lib/relay.db")
    assert sqlite_path("sqlite:x.db", tmp_path) == tmp_path / "x.db"
    with pytest.raises(ValueError, match="not supported"):
        sqlite_path("mysql://u:p@h/db", tmp_path)


def test_a_postgres_url_is_shown_without_its_passwords() -> None:
    shown = {
        "postgresql://relay:hunter2@db:5432/relay": "postgresql://relay:***@db:5432/relay",
        "postgres://relay:hunt@r2@db/relay?sslmode=require": (
            "postgres://relay:***@db/relay?sslmode=require"
        ),
        "postgresql://db/relay?user=relay&password=hunter2&sslpassword=hunter3": (
            "postgresql://db/relay?user=relay&password=***&sslpassword=***"
        ),
        "postgresql://relay@db/relay": "postgresql://relay@db/relay",
    }
    for url, expected in shown.items():
        assert redact(url) == expected
        assert repr(PostgresStore(url)) == f"PostgresStore({expected!r})"


async def test_a_schema_migrated_further_by_a_newer_relay_is_left_as_it_is(pg_url: str) -> None:
    import psycopg

    store = PostgresStore(pg_url)
    await store.open()
    try:
        newer = len(MIGRATIONS) + 1
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            await conn.execute("UPDATE relay_schema SET version=%s", (newer,))
        assert await store.migrate() == newer  # during a rolling deploy: no error, no change
        assert await accept(store, ev("e1"), [msg("alerts", "k")], 1.0) is Acceptance.ACCEPTED
    finally:
        await store.close()


# ---------------------------------------------------------------- PostgreSQL across replicas


@pytest.fixture
async def replicas(pg_url: str, tmp_path: Path) -> AsyncIterator[list[Store]]:
    stores = [open_store(pg_url, tmp_path) for _ in range(3)]
    import asyncio

    # the three migrate at once on an empty schema: the advisory lock makes it safe
    await asyncio.gather(*(s.open() for s in stores))
    yield stores
    for s in stores:
        await s.close()


async def test_one_replica_routes_at_a_time_and_another_takes_over(
    replicas: list[Store],
) -> None:
    a, b, c = replicas
    assert await a.lead_routing("a", 100.0, 10.0)
    assert await a.lead_routing("a", 105.0, 10.0)  # renewed: now until 115
    assert not await b.lead_routing("b", 114.0, 10.0)
    assert await b.lead_routing("b", 115.5, 10.0)  # a went silent: its lease expired
    assert not await a.lead_routing("a", 116.0, 10.0)
    await b.release_routing("b")  # b stops: c need not wait for the lease
    assert await c.lead_routing("c", 117.0, 10.0)


async def test_a_lease_renewed_early_is_not_extended_and_still_keeps_others_out(
    replicas: list[Store],
) -> None:
    a, b, _c = replicas
    assert await a.lead_routing("a", 100.0, 10.0)  # until 110
    assert await a.lead_routing("a", 104.0, 10.0)  # most of it left: nothing written
    assert not await b.lead_routing("b", 109.9, 10.0)
    assert await b.lead_routing("b", 110.0, 10.0)  # a's lease ran out at 110, not 114
    assert not await a.lead_routing("a", 111.0, 10.0)
    assert not await a.lead_routing("a", 112.0, 10.0)  # and a knows it lost it


async def test_an_event_is_enqueued_once_even_by_two_routers(replicas: list[Store]) -> None:
    import asyncio

    a, b, _ = replicas
    await a.receive(ev("e1"), 1.0)
    (waiting,) = await b.inbox(10)
    written = await asyncio.gather(
        *(s.enqueue(routed(waiting, msg("alerts", "slack:alerts"))) for s in (a, b))
    )
    assert sorted(written, key=len) == [set(), {waiting.seq}]
    assert len(await a.rows(Status.PENDING)) == 1


async def test_replicas_race_on_one_event_id_and_exactly_one_wins(replicas: list[Store]) -> None:
    import asyncio

    answers = await asyncio.gather(
        *(accept(s, ev("same"), [msg("alerts", "slack:alerts")], 1.0) for s in replicas * 3)
    )
    assert answers.count(Acceptance.ACCEPTED) == 1
    assert len(await replicas[0].rows(Status.PENDING)) == 1


async def test_replicas_share_each_channels_pacing(replicas: list[Store]) -> None:
    for i in range(6):
        await accept(replicas[0], ev(f"e{i}"), [msg("alerts", "slack:alerts")], 100.0)
    await accept(replicas[0], ev("x"), [msg("events", "slack:other")], 100.0)

    async def send_next(i: int, now: float, key: str = "slack:alerts") -> bool:
        """Whether replica `i % 3` may send the head of `key` now (it sends it if so)."""
        store = replicas[i % 3]
        found = await store.claim(now, now + 60.0, rate=1.0, burst=3.0, limit=10)
        mine = False
        for claim in found.claimed:
            mine = mine or claim.row.pace_key == key
            await store.settle(sent(claim.row, now))
        return mine

    # the burst, whichever replica asks, then nothing more at the same instant
    assert [await send_next(i, 100.0) for i in range(5)] == [True] * 3 + [False] * 2
    assert await send_next(1, 101.0)
    # a 429 seen by one replica pauses the channel for all
    await replicas[0].settle(Settlement(0, "slack:alerts", Status.SENT, Reason.OK, 101.0,
                                        pause=30.0))  # fmt: skip
    found = await replicas[2].claim(110.0, 170.0, rate=1.0, burst=3.0, limit=10)
    assert found.claimed == () and found.paced_wait == pytest.approx(21.0)


async def test_replicas_racing_for_one_head_spend_one_token(replicas: list[Store]) -> None:
    import asyncio

    for i in range(4):
        await accept(replicas[0], ev(f"e{i}"), [msg("alerts", "slack:alerts", str(i))], 100.0)
    sent_texts = []
    for _ in range(4):
        rounds = await asyncio.gather(
            *(s.claim(100.0, 160.0, rate=1.0, burst=3.0, limit=10) for s in replicas)
        )
        claims = [c for r in rounds for c in r.claimed]
        if not claims:
            break
        # one replica sends; the others were skipped without spending the channel's budget
        assert len(claims) == 1, rounds
        winner = next(s for s, r in zip(replicas, rounds, strict=True) if r.claimed)
        assert await winner.settle(sent(claims[0].row, 100.0)) is Recording.RECORDED
        sent_texts.append(claims[0].row.message.text)
    assert sent_texts == ["0", "1", "2"]  # the whole burst of 3, in order, then paced


async def test_a_starting_replica_leaves_the_others_live_claims_alone(
    replicas: list[Store],
) -> None:
    first, second, _ = replicas
    await accept(first, ev("e1"), [msg("alerts", "slack:alerts")], 100.0)
    (head,) = await claim_all(first, 100.0, lease=60.0)
    assert await second.release_orphans(100.0) == 0  # `second` restarted: first still sending
    assert [r.id for r in await second.rows(Status.INFLIGHT)] == [head.id]
    assert await second.release_orphans(160.0) == 1  # the lease ran out: first is gone


async def test_a_dead_replicas_claims_are_taken_over_when_the_lease_expires(
    replicas: list[Store],
) -> None:
    first, second, _ = replicas
    await accept(first, ev("e1"), [msg("alerts", "slack:alerts")], 1.0)
    (head,) = await claim_all(first, 1.0, lease=30.0)
    assert await claim_all(second, 2.0) == []  # the key's head is in flight somewhere
    assert await second.release_expired(30.0) == 0
    assert await second.release_expired(31.0) == 1  # first replica died
    (again,) = await claim_all(second, 31.0)
    assert again.id == head.id and again.attempts == 2


async def test_only_one_replica_flushes_a_digest(replicas: list[Store]) -> None:
    import asyncio

    from relay.conversation.digest import build

    spec = GroupSpec("r", "k", wait=1.0, interval=60.0, max_items=100, show=5)
    for i in range(4):
        grouped = NewMessage("alerts", "slack:alerts", "t", Blocks(f"m{i}"), group=spec)
        await accept(replicas[i % 3], ev(f"g{i}"), [grouped], 1.0)
    batches = [await s.due_digests(5.0) for s in replicas]
    assert [len(b[0].items) for b in batches] == [4, 4, 4]
    await asyncio.gather(*(s.flush_digest(b[0], build(b[0]), 5.0) for s, b in zip(
        replicas, batches, strict=True)))  # fmt: skip
    (digest,) = await replicas[0].rows(Status.PENDING)
    assert payload(digest.message)["text"] == ":package: 4 events: task.failed"


def test_finding_heads_reads_the_undelivered_index_not_the_backlog(tmp_path: Path) -> None:
    from relay.store.db import prepare
    from relay.store.outbox import HEADS
    from relay.store.schema import SQLITE

    db = sqlite3.connect(tmp_path / "plan.db", isolation_level=None)
    migrate(db)
    heads = prepare(SQLITE, HEADS.replace("<columns>", "o.id"))
    plan = " | ".join(str(row[3]) for row in db.execute("EXPLAIN QUERY PLAN " + heads))
    assert "outbox_open" in plan and "SCAN outbox" not in plan, plan


def test_the_outbox_statements_of_every_message_read_by_index_never_whole(tmp_path: Path) -> None:
    # each message is written to every index of the outbox three times (queued, claimed,
    # finished), so the outbox keeps only the indexes these statements read through
    from relay.store import claims, outbox
    from relay.store.db import marks, prepare

    db = sqlite3.connect(tmp_path / "plan.db", isolation_level=None)
    migrate(db)
    statements = {
        "heads": outbox.HEADS.replace("<columns>", "o.id"),
        "open runs": " UNION ALL ".join([claims._OPEN] * 2),
        "claim": claims._CLAIM_RUNS.replace("<ids>", f"IN ({marks(3)})").replace(
            "<not ids>", f"NOT IN ({marks(3)})"
        ),
        "sendable": outbox._SENDABLE,
        "release": outbox._RELEASE,
        "retry": outbox._RETRY,
        "finish": outbox._FINISH,
    }
    read: set[str] = set()
    for name, statement in statements.items():
        sql = prepare(SQLITE, statement)
        plan = " | ".join(
            str(row[3]) for row in db.execute("EXPLAIN QUERY PLAN " + sql, [0] * sql.count("?"))
        )
        assert "SCAN o" not in plan and "SCAN outbox" not in plan, (name, plan)
        read |= set(re.findall(r"INDEX (outbox_\w+)", plan))
    indexes = {
        name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='outbox'"
            " AND name NOT LIKE 'sqlite_%'"
        )
    }  # fmt: skip
    # the other two: the pruner's (outbox_open_event) and the status index reads these use
    assert indexes == read | {"outbox_open_event"}, indexes


class _NotingTexts:
    """A psycopg connection that notes the text of every statement run through it."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.seen: set[str] = set()

    def execute(self, statement: str, parameters: Any = ()) -> Any:
        self.seen.add(statement)
        return self.conn.execute(statement, parameters)

    def cursor(self) -> Any:
        cursor, seen = self.conn.cursor(), self.seen

        class Noting:
            @property
            def rowcount(self) -> int:
                return cursor.rowcount

            def executemany(self, statement: str, rows: Any) -> None:
                seen.add(statement)
                cursor.executemany(statement, rows)

        return Noting()


async def test_on_postgres_an_events_statements_read_the_same_whatever_the_batch(
    pg_url: str, tmp_path: Path
) -> None:
    # PostgreSQL plans a statement once per connection only if its text comes back: with a `?`
    # per row, key or id, each size of an intake batch, a router batch, a claim or a group of
    # outcomes was a new statement to parse and plan
    from relay.event import to_record
    from relay.store import claims, inbox, outbox
    from relay.store.db import Db

    store = open_store(pg_url, tmp_path)
    await store.open()  # the schema
    await store.close()
    texts: list[set[str]] = []
    with psycopg.connect(pg_url) as conn:
        for n, (keys, per_key) in enumerate(((2, 2), (5, 3), (9, 2))):
            noting = _NotingTexts(conn)
            db = Db(noting, POSTGRES)
            events = {
                f"r{n}k{k}m{i}": msg("alerts", f"slack:r{n}k{k}", str(i))
                for k in range(keys)
                for i in range(per_key)
            }
            with conn.transaction():
                batch = [(e := ev(name), to_record(e), 100.0) for name in events]
                assert inbox.receive_all(db, batch) == [Acceptance.ACCEPTED] * len(events)
            with conn.transaction():
                waiting = inbox.inbox(db, 100)
                inbox.enqueue(db, [Routed(r, (events[r.event.id],)) for r in waiting])
            with conn.transaction():
                found = claims.claim(db, "me", 100.0, 160.0, 1000.0, 1000.0, 100, run=per_key)
                rows = [row for c in found.claimed for row in c.rows]
                assert sorted(r.event_id for r in rows) == sorted(events)
                recorded = outbox.settle(db, "me", [sent(row, 101.0) for row in rows])
                assert recorded == [Recording.RECORDED] * len(rows)
            texts.append(noting.seen)
    assert texts[0] == texts[1] == texts[2]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_database_of_the_previous_schema_upgrades_and_sends_what_it_queued_in_order(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from oldschema import store_at

    # schema 11 (before the outbox lost its first index): two messages of one channel queued,
    # one of another channel claimed by a relay that died, one sent
    insert = (
        "INSERT INTO outbox (event_source, event_id, event_type, destination, pace_key, template,"
        " payload, status, created_at, next_attempt_at, lease_until, finished_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
    )

    def row(event_id: str, key: str, status: str, lease: float | None = None) -> tuple:
        finished = 5.0 if status == "sent" else None
        text = json.dumps({"text": event_id})
        return (insert, ("anchor", event_id, "task.failed", "alerts", key, "t", text, status,
                         1.0, 1.0, lease, finished))  # fmt: skip

    rows = [
        row("e0", "k1", "sent"),
        row("e1", "k1", "pending"),
        row("e2", "k1", "pending"),
        row("e3", "k2", "inflight", lease=2.0),
    ]
    store = store_at(11, backend, tmp_path, request, rows)
    await store.open()
    try:
        assert await store.migrate() == VERSION
        assert await store.release_expired(10.0) == 1
        order: list[str] = []
        for now in (10.0, 11.0, 12.0):
            for claimed in await claim_all(store, now):
                order.append(claimed.event_id)
                assert await store.settle(sent(claimed, now)) is Recording.RECORDED
        assert sorted(order) == ["e1", "e2", "e3"] and order.index("e1") < order.index("e2")
        assert await store.rows(Status.PENDING) == []
        assert sorted(r.event_id for r in await store.rows(Status.SENT)) == ["e0", "e1", "e2", "e3"]
    finally:
        await store.close()
    if backend == "sqlite":
        db = sqlite3.connect(tmp_path / "relay.db")
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")]
    else:
        import psycopg

        with psycopg.connect(request.getfixturevalue("pg_url")) as conn:
            names = [
                n
                for (n,) in conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                )
            ]
    assert "outbox_head" not in names and "outbox_open" in names


async def test_concurrent_accepts_commit_together_and_still_dedup(store: Store) -> None:
    import asyncio

    ids = ["a", "b", "a", "c", "a", "b"]
    answers = await asyncio.gather(
        *(accept(store, ev(i), [msg("alerts", "slack:alerts", i)], 1.0) for i in ids)
    )
    for event_id in "abc":  # whichever call commits first wins; replicas may interleave
        mine = [a for i, a in zip(ids, answers, strict=True) if i == event_id]
        assert mine.count(Acceptance.ACCEPTED) == 1
    assert sorted(r.message.text for r in await store.rows(Status.PENDING)) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "e1", "type": "task.failed", "data": {"n": 1e400,'
        b' "big": 123456789012345678901234567890, "s": "\\u00e9\\ud83d\\ude00 \xc3\xa9"}}',
        b'  \n{"id": "e1", "type": "task.failed", "data": null, "extra": [NaN, Infinity]}',
        '{"id": "e1", "type": "task.failed", "data": {"s": "é"}}'.encode("utf-16"),
        b'\xef\xbb\xbf{"id": "e1", "type": "task.failed"}',
    ],
)
async def test_an_event_comes_back_from_the_inbox_as_it_was_parsed(
    store: Store, body: bytes
) -> None:
    from relay.providers.anchor import AnchorProvider

    (event,) = AnchorProvider("anchor", ["secret"]).parse({}, body)
    await store.receive(event, 1.0)
    (waiting,) = await store.inbox(1)
    back = waiting.event
    assert (back.source, back.id, back.type, back.created, back.text) == (
        event.source,
        event.id,
        event.type,
        event.created,
        event.text,
    )
    # NaN is not equal to itself: compare the JSON texts
    assert json.dumps(back.data) == json.dumps(event.data)
    assert json.dumps(back.envelope) == json.dumps(event.envelope)


async def _route_one(store: SqliteStore) -> object:
    [received] = await store.inbox(10)
    return await store.enqueue(routed(received, msg("alerts", "slack:alerts")), 2.0)


async def _claim_one(store: SqliteStore) -> object:
    return [r.event_id for r in await claim_all(store, 3.0)]


async def _settle_one(store: SqliteStore) -> object:
    [row] = [r for r in await store.rows(Status.INFLIGHT)]
    return await store.settle(sent(row, 4.0))


# The path of every event, step by step: each runs on the event loop's thread unless another
# write holds the database, and then waits for it on the store's thread, the loop turning.
EVERY_EVENT = [
    ("accept", lambda store: store.receive(ev("e1"), 1.0), Acceptance.ACCEPTED),
    ("route", _route_one, {1}),
    ("claim", _claim_one, ["e1"]),
    ("settle", _settle_one, Recording.RECORDED),
]


@pytest.mark.parametrize("upto", range(len(EVERY_EVENT)), ids=[s[0] for s in EVERY_EVENT])
async def test_each_step_of_an_event_waits_for_another_writer_without_blocking_the_loop(
    tmp_path: Path, upto: int
) -> None:
    import time

    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    for _name, step, _result in EVERY_EVENT[:upto]:  # the steps before, unhindered
        await step(store)
    _name, step, result = EVERY_EVENT[upto]
    other = sqlite3.connect(tmp_path / "relay.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another write holds the database
    stepping = asyncio.ensure_future(step(store))
    began = time.monotonic()
    await asyncio.sleep(0.3)
    assert time.monotonic() - began < 1.5  # the loop kept turning meanwhile
    assert not stepping.done()
    other.execute("COMMIT")
    assert await asyncio.wait_for(stepping, 10) == result
    other.close()
    await store.close()


# JSON carries what no text column holds: lone surrogates (`\ud800` escaped, or the bytes
# ED A0 80, which json.loads on bytes lets through) and NUL, which PostgreSQL's TEXT refuses
NOT_TEXT_BODY = (
    b'{"id": "e1", "type": "task.failed", "text": "page \\udfff text \\u0000",'
    b' "data": {"title": "broken \\ud800 page", "raw": "\xed\xa0\x80", "k\\ud800": ["\\u0000"]}}'
)


async def stored_body(store: Store, seq: int) -> bytes:
    """The request body as the inbox holds it (BLOB / BYTEA)."""
    if isinstance(store, SqliteStore):
        db = sqlite3.connect(store.path)
        try:
            return bytes(db.execute("SELECT body FROM inbox WHERE seq=?", (seq,)).fetchone()[0])
        finally:
            db.close()
    assert isinstance(store, PostgresStore)
    import psycopg

    async with await psycopg.AsyncConnection.connect(store.url) as conn:
        cur = await conn.execute("SELECT body FROM inbox WHERE seq=%s", (seq,))
        found = await cur.fetchone()
        assert found is not None
        return bytes(found[0])


async def test_text_that_is_not_valid_text_is_kept_and_read_back_with_replacements(
    store: Store,
) -> None:
    from relay.providers.anchor import AnchorProvider

    (event,) = AnchorProvider("anchor", ["secret"]).parse({}, NOT_TEXT_BODY)
    assert await store.receive(event, 1.0) is Acceptance.ACCEPTED
    # an event without a body (a Tabstack story event) is stored as JSON text instead
    story = Event(
        "tabstack",
        "tabstack",
        "run_1:end",
        "run.completed",
        {"answer": "broken \ud800 answer", "k\udfff": "\x00"},
        text="run \udfff done\x00",
        envelope={"raw": "\ud800"},
    )
    assert await store.receive(story, 2.0) is Acceptance.ACCEPTED
    first, second = await store.inbox(10)
    assert await stored_body(store, first.seq) == NOT_TEXT_BODY  # the body stays byte-exact
    back = first.event
    assert back.text == "page \ufffd text \ufffd"
    assert back.data == {"title": "broken \ufffd page", "raw": "\ufffd", "k\ufffd": ["\ufffd"]}
    assert back.envelope["data"] == back.data
    assert second.event.data == {"answer": "broken \ufffd answer", "k\ufffd": "\ufffd"}
    assert second.event.text == "run \ufffd done\ufffd"
    assert second.event.envelope == {"raw": "\ufffd"}


async def test_messages_rendered_from_invalid_text_are_queued_with_replacements(
    store: Store,
) -> None:
    from relay.conversation.digest import build

    await store.receive(ev("e1"), 1.0)
    (waiting,) = await store.inbox(1)
    message = Blocks("broken \ud800 page", ({"type": "section", "text": "\udfff"},))
    shown = Blocks("broken \ufffd page", ({"type": "section", "text": "\ufffd"},))
    spec = GroupSpec("r", "k", wait=1.0, interval=60.0, max_items=100, show=5)
    messages = [
        NewMessage("alerts", "slack:alerts", "t", message, step=Step(thread="ses_\ud800")),
        NewMessage("events", "slack:events", "t", message, muted=True),
        NewMessage("digest", "slack:digest", "t", message, group=spec),
    ]
    assert await store.enqueue(routed(waiting, *messages)) == {waiting.seq}
    (row,) = await store.rows(Status.PENDING)
    assert (row.message, row.step) == (shown, Step(thread="ses_\ufffd"))
    assert [r.message for r in await store.rows(Status.MUTED)] == [shown]
    (batch,) = await store.due_digests(5.0)
    assert [item.message for item in batch.items] == [shown]
    await store.flush_digest(batch, replace(build(batch), message=message), 5.0)
    assert [r.message.text for r in await store.rows(Status.PENDING)] == [shown.text] * 2


async def test_an_accept_the_database_refuses_fails_alone_not_with_its_group(
    store: Store,
) -> None:
    import asyncio

    # received at the same instant, they are committed as one group on SQLite; one event the
    # database cannot hold (a lone surrogate in its id) must not fail the others with it
    valid = [ev(f"e{i:02d}") for i in range(12)]
    events = [*valid[:6], ev("bad\ud800"), *valid[6:]]
    answers = await asyncio.gather(*(store.receive(e, 1.0) for e in events), return_exceptions=True)
    assert isinstance(answers[6], UnicodeEncodeError)
    assert answers[:6] + answers[7:] == [Acceptance.ACCEPTED] * 12
    assert sorted(r.event.id for r in await store.inbox(100)) == [e.id for e in valid]
    # the group commit keeps working afterwards
    again = await asyncio.gather(*(store.receive(e, 2.0) for e in [ev("e00"), ev("e12")]))
    assert again == [Acceptance.DUPLICATE, Acceptance.ACCEPTED]


# ---------------------------------------------------------------- claims and heartbeats


async def test_an_outcome_is_written_on_the_claim_of_the_process_that_holds_it(
    store: Store,
) -> None:
    await accept(store, ev("e1"), [msg("alerts", "slack:alerts")], 100.0)
    await store.beat()
    (head,) = await claim_all(store, 100.0, lease=60.0)
    # its holder is alive: nothing but the lease ends the claim
    assert await store.release_expired(159.0) == 0
    assert await store.settle(retry(head, 100.0)) is Recording.RECORDED
    (head,) = await claim_all(store, 100.0)
    assert await store.settle(dead(head, 101.0)) is Recording.RECORDED
    assert await store.replay_dead(None, 102.0) == 1
    (head,) = await claim_all(store, 102.0)
    assert await store.settle(sent(head, 103.0)) is Recording.RECORDED
    assert [r.id for r in await store.rows(Status.SENT)] == [head.id]


async def beat_until(store: Store, stop: asyncio.Event, every: float = 0.1) -> None:
    while not stop.is_set():
        await store.beat()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def test_a_replica_keeps_its_claims_while_it_beats_and_loses_them_once_it_stops(
    pg_url: str,
) -> None:
    live = PostgresStore(pg_url)
    other = PostgresStore(pg_url, stale_after=1.5)  # 5 s in production
    await asyncio.gather(live.open(), other.open())
    try:
        await accept(live, ev("e1"), [msg("alerts", "slack:alerts")], 100.0)
        await live.beat()
        (head,) = await claim_all(live, 100.0, lease=9_900.0)
        stop = asyncio.Event()
        beating = asyncio.create_task(beat_until(live, stop))
        # twice the stale threshold: a replica that beats keeps its claim, however long it sends
        loop = asyncio.get_running_loop()
        until = loop.time() + 3.0
        while loop.time() < until:
            assert await other.release_expired(101.0) == 0
            await asyncio.sleep(0.1)
        stop.set()
        await beating
        stopped = loop.time()
        # `live` died: its claim comes back once its heartbeat is stale, long before its lease
        while await other.release_expired(101.0) == 0:
            assert loop.time() - stopped < 6.0, "the claim of a dead replica was kept"
            await asyncio.sleep(0.05)
        assert loop.time() - stopped > 1.0  # not before its heartbeat was stale
        (again,) = await claim_all(other, 101.0)
        assert again.id == head.id and again.attempts == 2
    finally:
        await asyncio.gather(live.close(), other.close())


async def test_an_outcome_is_recorded_only_on_a_row_its_replica_still_holds(pg_url: str) -> None:
    late = PostgresStore(pg_url)
    taker = PostgresStore(pg_url, stale_after=0.0)  # presumes dead whoever is not beating now
    await asyncio.gather(late.open(), taker.open())
    try:
        await accept(late, ev("e1"), [msg("alerts", "slack:alerts")], 100.0)
        await late.beat()
        (head,) = await claim_all(late, 100.0)
        await asyncio.sleep(0.01)
        assert await taker.release_expired(100.0) == 1  # `late` was presumed dead
        await taker.beat()
        (taken,) = await claim_all(taker, 101.0)
        assert taken.id == head.id
        # `late`'s answer comes in after all: whatever it says, the row is the taker's
        assert await late.settle(sent(head, 102.0)) is Recording.LOST
        assert await late.settle(retry(head, 200.0)) is Recording.LOST
        assert await late.settle(dead(head, 102.0)) is Recording.LOST
        (inflight,) = await taker.rows(Status.INFLIGHT)
        assert (inflight.id, inflight.attempts, inflight.last_reason) == (head.id, 2, None)
        assert await taker.settle(sent(taken, 103.0)) is Recording.RECORDED
        (done,) = await taker.rows(Status.SENT)
        assert done.id == head.id
        # nor does a late answer overwrite a row that is finished
        assert await late.settle(retry(head, 200.0)) is Recording.LOST
        assert [r.id for r in await taker.rows(Status.SENT)] == [head.id]
    finally:
        await asyncio.gather(late.close(), taker.close())


# ---------------------------------------------------------------- upgrading from schema 4

OLD_ROW = (
    "INSERT INTO outbox (event_source, event_id, event_type, destination, pace_key, template,"
    " payload, status, attempts, created_at, next_attempt_at, lease_until, step)"
    " VALUES ('anchor', '{id}', 'task.failed', 'alerts', '{key}', 't',"
    ' \'{{"text": "{id}", "blocks": []}}\', \'{status}\', {attempts}, 100, 100, {lease}, NULL)'
)
OLD_ROWS = [
    OLD_ROW.format(id="e1", key="slack:a", status="inflight", attempts=1, lease=160),
    OLD_ROW.format(id="e2", key="slack:a", status="pending", attempts=0, lease="NULL"),
    OLD_ROW.format(id="e3", key="slack:b", status="pending", attempts=0, lease="NULL"),
    "INSERT INTO events (source, id, type, received_at)"
    " VALUES ('anchor', 'e4', 'task.failed', 100)",
    "INSERT INTO inbox (source, event_id, type, provider, envelope, data, received_at)"
    " VALUES ('anchor', 'e4', 'task.failed', 'anchor', '{\"id\": \"e4\"}', '{}', 100)",
]


def schema_4(dialect: Dialect) -> list[str]:
    """The statements that built a schema-4 database in `dialect`, then its rows."""
    built = [dialect.ddl(statement) for script in MIGRATIONS[:4] for statement in script]
    return [*(ddl for ddl in built if ddl is not None), *OLD_ROWS]


def write_schema_4_sqlite(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    for statement in schema_4(SQLITE):
        db.execute(statement)
    db.execute("PRAGMA user_version=4")
    db.close()


async def write_schema_4_postgres(url: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE relay_schema (version INTEGER NOT NULL)")
        await conn.execute("INSERT INTO relay_schema (version) VALUES (4)")
        for statement in schema_4(POSTGRES):
            await conn.execute(statement.encode())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_upgrading_a_schema_4_database_keeps_its_queue(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store: Store
    if backend == "sqlite":
        write_schema_4_sqlite(tmp_path / "relay.db")
        store = SqliteStore(tmp_path / "relay.db")
    else:
        url = request.getfixturevalue("pg_url")
        await write_schema_4_postgres(url)
        # presumes dead whoever is not beating now: a claim of the older relay still waits
        # for its lease, since nothing says which process holds it
        store = PostgresStore(url, stale_after=0.0)
    await store.open()
    try:
        assert await store.migrate() == VERSION
        assert [r.event_id for r in await store.rows(Status.INFLIGHT)] == ["e1"]
        assert [r.event_id for r in await store.rows(Status.PENDING)] == ["e2", "e3"]
        assert [r.event.id for r in await store.inbox(10)] == ["e4"]
        assert await store.receive(ev("e4"), 101.0) is Acceptance.DUPLICATE
        (other,) = await claim_all(store, 150.0)  # the old claim still holds its channel
        assert other.event_id == "e3"
        assert await store.settle(sent(other, 150.0)) is Recording.RECORDED
        assert await store.release_expired(150.0) == 0
        assert await store.release_expired(160.0) == 1
        (first,) = await claim_all(store, 160.0)
        assert (first.event_id, first.attempts, first.message.text) == ("e1", 2, "e1")
        assert await store.settle(sent(first, 161.0)) is Recording.RECORDED
        assert [r.event_id for r in await claim_all(store, 161.0)] == ["e2"]
    finally:
        await store.close()


async def test_a_key_with_its_own_pace_is_claimed_at_that_pace(store: Store) -> None:
    for i in range(3):
        await accept(store, ev(f"s{i}"), [msg("slow", "slack:slow", str(i))], 100.0)
        await accept(store, ev(f"f{i}"), [msg("fast", "slack:fast", str(i))], 100.0)

    async def round_at(now: float) -> list[str]:
        found = await store.claim(
            now, now + 60, rate=100.0, burst=100.0, limit=10, paces={"slack:slow": (1.0, 1.0)}
        )
        for claim in found.claimed:
            await store.settle(sent(claim.row, now))
        return sorted(c.row.pace_key for c in found.claimed)

    assert await round_at(100.0) == ["slack:fast", "slack:slow"]
    assert await round_at(100.1) == ["slack:fast"]  # the slow key waits for its next token
    assert await round_at(101.1) == ["slack:fast", "slack:slow"]


async def test_a_claim_takes_a_run_of_a_keys_due_messages_as_far_as_its_tokens_go(
    store: Store,
) -> None:
    for i in range(5):
        await accept(store, ev(f"e{i}"), [msg("alerts", "slack:alerts", str(i))], 100.0)
    await accept(store, ev("later"), [msg("alerts", "slack:alerts", "later")], 200.0)
    await accept(store, ev("other"), [msg("events", "slack:events", "other")], 100.0)
    found = await store.claim(150.0, 210.0, rate=1.0, burst=3.0, limit=10, run=10)
    runs = {c.row.pace_key: [r.message.text for r in c.rows] for c in found.claimed}
    assert runs == {"slack:alerts": ["0", "1", "2"], "slack:events": ["other"]}
    assert found.next_due is None  # both keys' heads are in flight
    # the run's last two come back unsent: pending, uncounted, and first of their key again
    (alerts,) = [c for c in found.claimed if c.row.pace_key == "slack:alerts"]
    for row in alerts.rows[:1]:
        await store.settle(sent(row, 151.0))
    assert await store.unclaim([r.id for r in alerts.rows[1:]]) == 2
    found = await store.claim(160.0, 220.0, rate=1.0, burst=10.0, limit=10, run=10)
    (again,) = found.claimed
    # the message accepted at 200 is not due at 160: the run ends before it
    assert [(r.message.text, r.attempts) for r in again.rows] == [
        ("1", 1), ("2", 1), ("3", 1), ("4", 1)
    ]  # fmt: skip
    assert [(r.message.text, r.attempts) for r in await store.rows(Status.PENDING)] == [
        ("later", 0)
    ]
    assert found.next_due is None


async def test_a_claim_passes_over_paced_keys_to_fill_its_limit_with_the_oldest_due_heads(
    store: Store,
) -> None:
    slow = {"slack:a": (1.0, 1.0), "slack:b": (1.0, 1.0)}
    for key in "ab":
        await accept(store, ev(f"e{key}"), [msg(key, f"slack:{key}", key)], 100.0)
    first = await store.claim(100.0, 160.0, rate=100.0, burst=100.0, limit=2, paces=slow)
    for claim in first.claimed:  # their one token is spent: a and b wait a second
        await store.settle(sent(claim.row, 100.0))
    for key in "ab":
        await accept(store, ev(f"e{key}2"), [msg(key, f"slack:{key}", key + "2")], 100.0)
    for key in "cde":
        await accept(store, ev(f"e{key}"), [msg(key, f"slack:{key}", key)], 100.0)
    # the heads oldest first: a2, b2 (waiting for a token), then c, d, e: the claim's two are
    # c and d, and it says when the paced ones may go
    found = await store.claim(100.2, 160.0, rate=100.0, burst=100.0, limit=2, paces=slow)
    assert [c.row.message.text for c in found.claimed] == ["c", "d"]
    assert found.paced_wait == pytest.approx(0.8)
    found = await store.claim(100.3, 160.0, rate=100.0, burst=100.0, limit=5, paces=slow)
    assert [c.row.message.text for c in found.claimed] == ["e"]
    assert found.paced_wait == pytest.approx(0.7)
    found = await store.claim(101.0, 160.0, rate=100.0, burst=100.0, limit=5, paces=slow)
    assert [c.row.message.text for c in found.claimed] == ["a2", "b2"]


async def test_a_claim_skips_a_key_another_replica_holds_and_takes_the_others(
    pg_url: str, tmp_path: Path
) -> None:
    import psycopg

    store = open_store(pg_url, tmp_path)
    await store.open()
    try:
        for key in "abc":
            for i in range(2):
                await accept(
                    store, ev(f"e{key}{i}"), [msg(key, f"slack:{key}", f"{key}{i}")], 100.0
                )
        # every key has its pace row once claimed; give them back unsent
        found = await store.claim(100.0, 160.0, rate=100.0, burst=100.0, limit=10, run=1)
        assert await store.unclaim([c.row.id for c in found.claimed]) == 3
        # another replica is in the middle of a claim on b: its pace row is locked
        with psycopg.connect(pg_url) as other, other.transaction():
            other.execute("SELECT 1 FROM pace WHERE key='slack:b' FOR UPDATE")
            found = await store.claim(100.0, 160.0, rate=100.0, burst=100.0, limit=10, run=5)
            runs = {c.row.pace_key: [r.message.text for r in c.rows] for c in found.claimed}
            assert runs == {"slack:a": ["a0", "a1"], "slack:c": ["c0", "c1"]}
        # once it is done, b is claimed, whole
        found = await store.claim(100.0, 160.0, rate=100.0, burst=100.0, limit=10, run=5)
        assert [[r.message.text for r in c.rows] for c in found.claimed] == [["b0", "b1"]]
    finally:
        await store.close()
