"""The pipeline's two halves: `accept` (what happens before the 202: the event is stored, nothing
is routed or rendered) and the router (`route_pending`, `run`): acceptance order, a routing bug
that keeps its event instead of losing it, acknowledgements first, one router among replicas."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relay.config import parse_config
from relay.event import Event
from relay.pipeline import BATCH, Pipeline
from relay.providers.anchor import AnchorProvider
from relay.providers.tabstack import TabstackProvider
from relay.records import Acceptance, Reason, Settlement, Status
from relay.render.formats.slack import payload
from relay.render.renderer import Rendered, Renderer
from relay.runtime import Runtime, build_runtime
from relay.store import PostgresStore, SqliteStore, Store, open_store

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [test-secret]}
destinations:
  alerts: {type: console}
  events: {type: console}
routes:
  - {match: {type: task.failed}, to: [alerts]}
default: {to: [events]}
"""


def runtime(tmp_path: Path) -> Runtime:
    return build_runtime(parse_config(CONFIG, tmp_path / "relay.yaml", {}))


def event(n: int, kind: str = "task.completed") -> Event:
    return Event("anchor", "anchor", f"evt_{n}", kind, {"task_id": f"tsk_{n}"})


@pytest.fixture
async def store(database: str, tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(database, tmp_path)
    await s.open()
    yield s
    await s.close()


async def route_all(pipeline: Pipeline) -> None:
    while await pipeline.route_pending():
        pass


async def test_accepting_stores_the_event_and_routes_nothing_yet(
    store: Store, tmp_path: Path
) -> None:
    pipeline = Pipeline(runtime(tmp_path), store)
    assert await pipeline.accept(event(1, "task.failed")) is Acceptance.ACCEPTED
    assert await pipeline.accept(event(1, "task.failed")) is Acceptance.DUPLICATE
    assert (await store.inbox_stats()).waiting == 1
    assert await store.rows(Status.PENDING) == []
    await route_all(pipeline)
    (row,) = await store.rows(Status.PENDING)
    assert (row.event_id, row.destination, row.template) == (
        "evt_1",
        "alerts",
        "anchor/task.failed",
    )
    assert "tsk_1" in payload(row.message)["text"]
    assert (await store.inbox_stats()).waiting == 0


async def test_messages_are_queued_in_the_order_events_were_accepted(
    store: Store, tmp_path: Path
) -> None:
    pipeline = Pipeline(runtime(tmp_path), store)
    count = BATCH * 2 + 5  # several batches
    for n in range(count):
        await pipeline.accept(event(n))
    await route_all(pipeline)
    queued = await store.rows(Status.PENDING)
    assert [r.event_id for r in queued] == [f"evt_{n}" for n in range(count)]


class Failing(Renderer):
    """A renderer with a bug that only one event triggers (render never raises by contract)."""

    def render(self, event: Event, **kwargs: Any) -> Rendered:
        if event.id == "evt_2":
            raise RuntimeError("a bug")
        return super().render(event, **kwargs)


async def test_an_event_the_router_fails_on_stays_in_the_inbox_and_the_rest_flow(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = runtime(tmp_path)
    broken = Runtime(**{**base.__dict__, "renderer": Failing()})
    pipeline = Pipeline(broken, store)
    for n in range(1, 4):
        await pipeline.accept(event(n))
    await route_all(pipeline)
    assert [r.event_id for r in await store.rows(Status.PENDING)] == ["evt_1", "evt_3"]
    assert [r.event.id for r in await store.inbox(10)] == ["evt_2"]  # kept, not lost
    failed = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [getattr(r, "event_id", None) for r in failed] == ["evt_2"]
    # a later process (the bug fixed) routes it
    await store.release_routing(pipeline.holder)  # as the first one does when it stops
    await route_all(Pipeline(base, store))
    assert (await store.inbox_stats()).waiting == 0


async def refuse_messages_of(store: Store, event_id: str) -> None:
    """Make the database itself refuse the outbox rows of one event (a trigger)."""
    if isinstance(store, SqliteStore):
        db = sqlite3.connect(store.path)
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON outbox"
            f" WHEN NEW.event_id = '{event_id}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        db.close()
        return
    assert isinstance(store, PostgresStore)
    async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as conn:
        await conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$"
        )
        await conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON outbox FOR EACH ROW"
            f" WHEN (NEW.event_id = '{event_id}') EXECUTE FUNCTION refuse()"
        )


async def test_an_event_whose_messages_the_store_refuses_holds_up_no_other(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await refuse_messages_of(store, "evt_2")
    pipeline = Pipeline(runtime(tmp_path), store)
    for n in range(1, 5):
        await pipeline.accept(event(n))
    await route_all(pipeline)  # one batch: its transaction fails, then each event alone
    assert [r.event_id for r in await store.rows(Status.PENDING)] == ["evt_1", "evt_3", "evt_4"]
    assert [r.event.id for r in await store.inbox(10)] == ["evt_2"]  # kept, not lost
    failed = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [getattr(r, "event_id", None) for r in failed] == ["evt_2"]
    await pipeline.accept(event(5))  # and the events behind it still flow
    await route_all(pipeline)
    assert [r.event_id for r in await store.rows(Status.PENDING)][-1] == "evt_5"


# What JSON carries and no text column holds: lone surrogates (escaped, or the bytes ED A0 80,
# which json.loads on bytes lets through) and NUL
NOT_TEXT_ANCHOR = (
    b'{"id": "evt_x", "type": "task.failed", "text": "\\udfff", "data": {"task_id": "tsk_\\ud800",'
    b' "error": {"type": "x", "message": "broken \\ud800 page \xed\xa0\x80 \\u0000"}}}'
)
NOT_TEXT_RUN = (
    b'event: start\ndata: {"task": "Find \\ud800 price"}\n\n'
    b'event: complete\ndata: {"success": true, "result": {"finalAnswer": "costs \\udfff"}}\n\n'
)


async def test_events_with_text_that_is_not_valid_text_are_queued_showing_replacements(
    store: Store, tmp_path: Path
) -> None:
    pipeline = Pipeline(runtime(tmp_path), store)
    events = [
        *AnchorProvider("anchor", []).parse({}, NOT_TEXT_ANCHOR),
        *TabstackProvider("tabstack", "token").parse({"x-relay-run-id": "run_x"}, NOT_TEXT_RUN),
    ]
    for e in events:
        assert await pipeline.accept(e) is Acceptance.ACCEPTED
    await route_all(pipeline)
    queued = [
        json.dumps(r.message.to_json(), ensure_ascii=False)
        for r in await store.rows(Status.PENDING)
    ]
    assert len(queued) == len(events) == 3
    assert not any(re.search("[\ud800-\udfff\x00]", text) for text in queued)
    failure, started, completed = queued
    assert "tsk_\ufffd" in failure and "broken \ufffd page \ufffd \ufffd" in failure
    assert "Find \ufffd price" in started and "costs \ufffd" in completed


class GatedStore(SqliteStore):
    """SQLite whose commits of new events wait for `gate`: accepts stay in flight meanwhile."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()

    async def receive(self, event: Event, now: float) -> Acceptance:
        await self.gate.wait()
        return await super().receive(event, now)


async def test_towards_paced_channels_the_router_renders_one_event_per_interval_while_accepts_wait(
    tmp_path: Path,
) -> None:
    store = GatedStore(tmp_path / "relay.db")
    await store.open()
    # five messages already wait for their channel's pace: rendering more gains nothing now
    pipeline = Pipeline(runtime(tmp_path), store, yield_seconds=0.25, behind=5)
    pipeline.paced = lambda: True
    store.gate.set()
    for n in range(5):
        await pipeline.accept(event(100 + n))
    await route_all(pipeline)
    await asyncio.sleep(0.1)  # the backlog is counted again at the router's next batch
    for n in range(10):
        await pipeline.accept(event(n))
    store.gate.clear()
    waiting = asyncio.create_task(pipeline.accept(event(99)))  # in flight until the gate opens
    stop = asyncio.Event()
    router = asyncio.create_task(pipeline.run(stop))
    await asyncio.sleep(0.6)
    # about three renders in 0.6 s, so the batch of ten is not written yet (without yielding,
    # all ten would be queued within milliseconds)
    assert len(await store.rows(Status.PENDING)) == 5
    assert (await store.inbox_stats()).waiting == 10
    store.gate.set()  # the acknowledgement goes out; the router catches up at full speed
    assert await waiting is Acceptance.ACCEPTED
    deadline = time.monotonic() + 10
    while len(await store.rows(Status.PENDING)) < 16:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    stop.set()
    await router
    await store.close()


async def test_while_channels_keep_up_the_router_renders_as_events_come(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "relay.db")
    await store.open()
    pipeline = Pipeline(runtime(tmp_path), store, yield_seconds=0.25, behind=5)
    store.gate.set()
    for n in range(10):
        await pipeline.accept(event(n))
    store.gate.clear()
    waiting = asyncio.create_task(pipeline.accept(event(99)))  # in flight meanwhile
    stop = asyncio.Event()
    router = asyncio.create_task(pipeline.run(stop))
    try:
        deadline = time.monotonic() + 0.5  # one render per 0.25 s would take 2.5 s
        while len(await store.rows(Status.PENDING)) < 10:
            assert time.monotonic() < deadline, "the router waited for the acknowledgements"
            await asyncio.sleep(0.02)
        assert not waiting.done()
    finally:
        store.gate.set()
        await waiting
        stop.set()
        await router
        await store.close()


async def test_when_relay_falls_behind_acknowledgements_wait_for_the_backlog_to_drain(
    store: Store, tmp_path: Path
) -> None:
    pipeline = Pipeline(runtime(tmp_path), store, hold=8, max_hold=30)
    for n in range(8):  # eight messages wait to be sent, and no worker sends them
        await pipeline.accept(event(n))
    await route_all(pipeline)
    stop = asyncio.Event()
    router = asyncio.create_task(pipeline.run(stop))
    try:
        await asyncio.sleep(0.2)  # the router counts the backlog
        held = asyncio.create_task(pipeline.accept(event(50)))
        await asyncio.sleep(0.5)
        assert not held.done(), "relay is behind: the sender should wait"
        assert await store.seen("anchor", "evt_50")  # durable meanwhile
        # a worker takes the messages (claimed, they no longer wait): the sender is answered
        now = time.time()
        await store.claim(now, now + 60, rate=1e5, burst=1e5, limit=10, run=100)
        assert await asyncio.wait_for(held, 5) is Acceptance.ACCEPTED
    finally:
        stop.set()
        await router


async def test_a_chat_that_is_down_does_not_hold_acknowledgements(
    store: Store, tmp_path: Path
) -> None:
    pipeline = Pipeline(runtime(tmp_path), store, hold=7, max_hold=5)
    for n in range(8):
        await pipeline.accept(event(n))
    await route_all(pipeline)
    # the channel's first message failed and waits ten minutes for its retry: the seven behind
    # it cannot be sent before, so relay is not behind
    now = time.time()
    found = await store.claim(now, now + 60, rate=1e5, burst=1e5, limit=1, run=1)
    (claim,) = found.claimed
    retry = Settlement(
        claim.row.id, claim.row.pace_key, Status.PENDING, Reason.SERVER_ERROR, now,
        error="500", next_attempt_at=now + 600,
    )  # fmt: skip
    await store.settle(retry)
    assert await ack_seconds(pipeline, event(9)) < 0.25


async def test_an_acknowledgement_is_held_at_most_max_hold(store: Store, tmp_path: Path) -> None:
    pipeline = Pipeline(runtime(tmp_path), store, hold=4, max_hold=0.3)
    for n in range(4):
        await pipeline.accept(event(n))
    await route_all(pipeline)
    assert 0.25 <= await ack_seconds(pipeline, event(9)) < 2


async def test_paced_channels_never_hold_acknowledgements(store: Store, tmp_path: Path) -> None:
    pipeline = Pipeline(runtime(tmp_path), store, hold=4, max_hold=5)
    pipeline.paced = lambda: True  # the messages wait for their channel, not for relay
    for n in range(4):
        await pipeline.accept(event(n))
    await route_all(pipeline)
    assert await ack_seconds(pipeline, event(9)) < 0.25


async def ack_seconds(pipeline: Pipeline, new: Event) -> float:
    """How long accepting `new` takes once the running router has counted the backlog."""
    stop = asyncio.Event()
    router = asyncio.create_task(pipeline.run(stop))
    try:
        await asyncio.sleep(0.2)
        started = time.monotonic()
        assert await pipeline.accept(new) is Acceptance.ACCEPTED
        return time.monotonic() - started
    finally:
        stop.set()
        await router


async def test_one_replica_routes_for_all_of_them(pg_url: str, tmp_path: Path) -> None:
    stores = [open_store(pg_url, tmp_path) for _ in range(2)]
    for s in stores:
        await s.open()
    first, second = (Pipeline(runtime(tmp_path), s, poll_seconds=0.05) for s in stores)
    try:
        assert await first.route_pending() == 0  # nothing waits, but first now leads
        await second.accept(event(1))
        await first.accept(event(2))
        assert await second.route_pending() == 0  # first holds the lease
        await route_all(first)
        queued = await stores[0].rows(Status.PENDING)
        assert [r.event_id for r in queued] == ["evt_1", "evt_2"]
    finally:
        for s in stores:
            await s.close()
