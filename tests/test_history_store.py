"""History in the store, on SQLite and PostgreSQL: what routing and delivery record of an event,
pruning in bounded steps, and a database written by the relay before history upgrading in place
(`tests/fixtures/upgrade/schema6.*`, written by that relay: see the SQL file's header)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from inbox import accept
from oldschema import store_from_fixture

from relay.event import Event
from relay.messages import Blocks
from relay.records import GroupSpec, NewMessage, Reason, Recording, Routed, Settlement, Status
from relay.store import PostgresStore, SqliteStore, Store, outbox
from relay.store.interface import SqlStore
from relay.store.schema import VERSION
from relay.store.views import EventFilter


def ev(event_id: str, kind: str = "task.failed", text: str | None = None) -> Event:
    envelope = {"id": event_id, "type": kind, "data": {"task_id": "tsk_1"}}
    return Event("anchor", "anchor", event_id, kind, {"task_id": "tsk_1"}, text=text,
                 envelope=envelope)  # fmt: skip


def msg(dest: str, text: str = "hi") -> NewMessage:
    return NewMessage(dest, f"slack:{dest}", "anchor/task.failed", Blocks(text))


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "relay.db")
    else:
        s = PostgresStore(request.getfixturevalue("pg_url"))
    await s.open()
    yield s
    await s.close()


async def _claim(store: Store, now: float) -> list[int]:
    found = await store.claim(now, now + 60, rate=1000.0, burst=1000.0, limit=100)
    return [c.row.id for c in found.claimed]


async def test_an_event_its_messages_and_every_attempt_are_kept(store: Store) -> None:
    await accept(store, ev("e1", text="task failed"), [msg("alerts"), msg("events")], 100.0)
    (first, second) = await _claim(store, 101.0)
    retry = Settlement(first, "slack:alerts", Status.PENDING, Reason.RATE_LIMITED, 101.5,
                       "ratelimited", next_attempt_at=103.0, took=0.25)  # fmt: skip
    await store.settle(retry)
    await store.settle(
        Settlement(
            second,
            "slack:events",
            Status.DEAD,
            Reason.CHANNEL,
            101.6,
            "channel_not_found",
            took=0.1,
        )
    )
    page = await store.history_events(EventFilter(), None, 10)
    (summary,) = page.items
    assert (summary.event_id, summary.outcome, summary.text) == ("e1", "dead", "task failed")
    assert summary.destinations == ("alerts", "events")
    detail = await store.history_event(summary.id)
    assert detail is not None
    assert detail.envelope == {"id": "e1", "type": "task.failed", "data": {"task_id": "tsk_1"}}
    alerts, events = detail.messages
    assert (alerts.status, alerts.attempts, alerts.last_error) == ("retrying", 1, "ratelimited")
    (attempt,) = alerts.timeline
    seen = (attempt.status, attempt.reason, attempt.error, attempt.took, attempt.next_attempt_at)
    assert seen == ("retrying", "rate_limited", "ratelimited", 0.25, 103.0)
    assert (events.status, events.timeline[0].reason) == ("dead", "channel")
    assert alerts.message["text"] == "hi"

    # the retry succeeds; the dead letter is replayed, then delivered: the event is delivered
    assert await _claim(store, 104.0) == [first]
    await store.settle(Settlement(first, "slack:alerts", Status.SENT, Reason.OK, 104.2,
                                  channel_id="C1", ts="1.5", took=0.2))  # fmt: skip
    assert (await store.history_events(EventFilter(outcome="dead"), None, 10)).items
    assert await store.replay_dead(None, 105.0) == 1
    assert [e.outcome for e in (await store.history_events(EventFilter(), None, 10)).items] == [
        "pending"
    ]
    assert await _claim(store, 106.0) == [second]
    await store.settle(Settlement(second, "slack:events", Status.SENT, Reason.OK, 106.1, ts="2"))
    detail = await store.history_event(summary.id)
    assert detail is not None
    assert detail.summary.outcome == "delivered"
    assert [(a.status, a.reason) for a in detail.messages[0].timeline] == [
        ("retrying", "rate_limited"), ("sent", "ok")]  # fmt: skip
    assert (detail.messages[0].channel_id, detail.messages[0].ts) == ("C1", "1.5")
    assert [a.status for a in detail.messages[1].timeline] == ["dead", "sent"]


async def test_dropped_and_muted_events_are_kept_with_their_outcome(store: Store) -> None:
    await accept(store, ev("dropped"), [], 100.0)
    muted = NewMessage("alerts", "slack:alerts", "anchor/task.failed", Blocks("x"), muted=True)
    await accept(store, ev("muted"), [muted], 101.0)
    found = {
        e.event_id: e.outcome for e in (await store.history_events(EventFilter(), None, 10)).items
    }
    assert found == {"dropped": "dropped", "muted": "muted"}


async def test_history_is_pruned_in_bounded_steps(store: Store) -> None:
    for i in range(5):
        await accept(store, ev(f"e{i}"), [msg("alerts")], 100.0 + i)
    for row_id in await _claim(store, 200.0):
        await store.settle(Settlement(row_id, "slack:alerts", Status.SENT, Reason.OK, 200.0))
    oldest = (await store.history_events(EventFilter(), None, 10)).items[-1]
    assert await store.prune_history(103.0, 2) == 2
    assert await store.prune_history(103.0, 2) == 1
    assert await store.prune_history(103.0, 2) == 0
    left = [e.event_id for e in (await store.history_events(EventFilter(), None, 10)).items]
    assert left == ["e4", "e3"]
    assert await store.history_event(oldest.id) is None


# ---------------------------------------------------------------- upgrading in place


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_database_written_before_history_upgrades_and_keeps_working(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = store_from_fixture("schema6", backend, tmp_path, request)
    await store.open()
    try:
        assert await store.migrate() == VERSION
        # nothing was routed with history yet
        assert (await store.history_events(EventFilter(), None, 10)).items == ()
        # the event waiting in the inbox enters history when it is routed
        (waiting,) = await store.inbox(10)
        assert waiting.event.id == "evt_3"
        trace = json.dumps({"explanation": ["anchor task.failed (evt_3)"]})
        await store.enqueue([Routed(waiting, (msg("alerts"),), ("failures",), trace)])
        (summary,) = (await store.history_events(EventFilter(), None, 10)).items
        assert (summary.event_id, summary.outcome, summary.text) == (
            "evt_3",
            "pending",
            "task 3 failed",
        )
        detail = await store.history_event(summary.id)
        assert detail is not None
        assert detail.routing == {"explanation": ["anchor task.failed (evt_3)"]}
        assert detail.messages[0].route == "failures"
        # the message queued before the upgrade is delivered and recorded as before
        claimed = await store.claim(2000.0, 2060.0, rate=100.0, burst=100.0, limit=10)
        rows = {c.row.event_id: c.row for c in claimed.claimed}
        assert set(rows) == {"evt_1", "evt_3"}
        old = rows["evt_1"]
        assert old.message.text == "pending one"
        assert await store.settle(Settlement(old.id, old.pace_key, Status.SENT, Reason.OK, 2001.0))
        # its dead letter replays
        (dead,) = await store.rows(Status.DEAD)
        assert (dead.event_id, dead.last_error) == ("evt_2", "channel_not_found")
        assert await store.replay_dead([dead.id], 2002.0) == 1
    finally:
        await store.close()


def test_store_history_is_seven_days_unless_the_config_says_otherwise(tmp_path: Path) -> None:
    from harness import ROOT

    from relay.config import load_config

    env = {
        "ANCHOR_WEBHOOK_SECRET": "s",
        "DECK_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }
    text = (ROOT / "config.example.yaml").read_text()
    (tmp_path / "templates").mkdir()
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    assert load_config(path, env=env).config.store.history == 7 * 86400.0
    # the example's commented block, uncommented and changed
    assert "# store:\n#   history: 7d\n" in text
    path.write_text(text.replace("# store:\n#   history: 7d\n", "store:\n  history: 36h\n"))
    assert load_config(path, env=env).config.store.history == 36 * 3600.0


async def test_a_grouped_message_follows_its_digest(store: Store) -> None:
    from relay.records import GroupSpec

    spec = GroupSpec("batches", "batch-1", wait=30.0, interval=300.0, max_items=100, show=10)
    grouped = NewMessage("alerts", "slack:alerts", "anchor/task.failed", Blocks("x"), group=spec)
    await accept(store, ev("g1"), [grouped], 100.0)
    await accept(store, ev("g2"), [grouped], 101.0)
    outcomes = {
        e.event_id: e.outcome for e in (await store.history_events(EventFilter(), None, 9)).items
    }
    assert outcomes == {"g1": "grouped", "g2": "grouped"}
    (batch,) = await store.due_digests(200.0)
    digest = NewMessage("alerts", "slack:alerts", "digest", Blocks("2 events"))
    await store.flush_digest(batch, digest, 200.0)
    (row_id,) = await _claim(store, 201.0)
    await store.settle(Settlement(row_id, "slack:alerts", Status.SENT, Reason.OK, 201.5, ts="9"))
    page = (await store.history_events(EventFilter(outcome="delivered"), None, 9)).items
    assert [e.event_id for e in page] == ["g2", "g1"]
    detail = await store.history_event(page[0].id)
    assert detail is not None
    (message,) = detail.messages
    assert (message.digest, message.ts, [a.status for a in message.timeline]) == (
        "batch-1",
        "9",
        ["sent"],
    )


async def test_the_pruner_forgets_everything_older_in_steps_and_stops_when_told(
    store: Store,
) -> None:
    import asyncio

    from relay.ops.history import prune

    for i in range(5):
        await accept(store, ev(f"old{i}"), [msg("alerts")], 100.0 + i)
    await accept(store, ev("new"), [msg("alerts")], 1000.0)
    stop = asyncio.Event()
    stop.set()
    assert await prune(store, 500.0, step=2, pause=0, stop=stop) == 0  # told to stop first
    assert await prune(store, 500.0, step=2, pause=0) == 5
    left = [e.event_id for e in (await store.history_events(EventFilter(), None, 10)).items]
    assert left == ["new"]


async def test_outcomes_settled_together_are_kept_each_and_a_lost_one_is_left_alone(
    store: Store,
) -> None:
    for key in "abcd":
        await accept(store, ev(f"e-{key}"), [msg(key)], 100.0)
    rows = {c.row.pace_key: c.row for c in (await store.claim(
        101.0, 161.0, rate=1000.0, burst=1000.0, limit=10)).claimed}  # fmt: skip
    assert await store.unclaim([rows["slack:d"].id]) == 1  # as if another replica took it
    group = [
        Settlement(rows["slack:a"].id, "slack:a", Status.SENT, Reason.OK, 102.0,
                   channel_id="C1", ts="1.1", took=0.1),
        Settlement(rows["slack:b"].id, "slack:b", Status.PENDING, Reason.SERVER_ERROR, 102.0,
                   "boom", next_attempt_at=110.0, took=0.2),
        Settlement(rows["slack:c"].id, "slack:c", Status.DEAD, Reason.CHANNEL, 102.0,
                   "channel_not_found", took=0.3),
        Settlement(rows["slack:d"].id, "slack:d", Status.SENT, Reason.OK, 102.0, took=0.4),
    ]  # fmt: skip
    assert isinstance(store, SqlStore)
    # the store's logic itself, on the group as one turn of the event loop hands it over
    recorded = await store._run(lambda db: outbox.settle(db, store.holder, group))
    assert recorded == [Recording.RECORDED] * 3 + [Recording.LOST]
    page = await store.history_events(EventFilter(), None, 10)
    outcomes = {e.event_id: e.outcome for e in page.items}
    assert outcomes == {"e-a": "delivered", "e-b": "retrying", "e-c": "dead", "e-d": "pending"}
    seen = {}
    for summary in page.items:
        detail = await store.history_event(summary.id)
        assert detail is not None
        (m,) = detail.messages
        seen[summary.event_id] = (m.status, m.attempts, [a.took for a in m.timeline], m.ts)
    assert seen == {
        "e-a": ("sent", 1, [0.1], "1.1"),
        "e-b": ("retrying", 1, [0.2], None),
        "e-c": ("dead", 1, [0.3], None),
        "e-d": ("pending", 0, [], None),
    }
    assert [(r.pace_key, r.attempts) for r in await store.rows(Status.PENDING)] == [
        ("slack:b", 1), ("slack:d", 0)
    ]  # fmt: skip


async def test_a_batch_of_events_keeps_each_its_own_messages_and_outcome(store: Store) -> None:
    for i in range(4):
        await store.receive(ev(f"e{i}"), 100.0 + i)
    waiting = {r.event.id: r for r in await store.inbox(10)}
    spec = GroupSpec("r", "k", wait=30.0, interval=300.0, max_items=100, show=10)
    muted = NewMessage("b", "slack:b", "anchor/task.failed", Blocks("m0"), muted=True)
    silenced = NewMessage("c", "slack:c", "anchor/task.failed", Blocks("s1"), silence="sil-1")
    grouped = NewMessage("d", "slack:d", "anchor/task.failed", Blocks("g3"), group=spec)
    planned = [
        Routed(waiting["e0"], (msg("a", "a0"), muted, msg("c", "c0")), ("r1", "r2", "r3")),
        Routed(waiting["e1"], (silenced,)),
        Routed(waiting["e2"], ()),
        Routed(waiting["e3"], (grouped, msg("a", "a3"))),
    ]
    assert await store.enqueue(planned, 105.0) == {r.received.seq for r in planned}
    queued = {r.id: r for status in Status for r in await store.rows(status)}
    page = await store.history_events(EventFilter(), None, 10)
    assert {e.event_id: e.outcome for e in page.items} == {
        "e0": "pending", "e1": "silenced", "e2": "dropped", "e3": "pending"
    }  # fmt: skip
    made = {}
    for summary in page.items:
        detail = await store.history_event(summary.id)
        assert detail is not None
        for m in detail.messages:
            if m.outbox_id is not None:  # its outbox row is the same message
                row = queued[m.outbox_id]
                assert (row.event_id, row.destination, row.message.text) == (
                    summary.event_id, m.destination, m.message["text"]
                )  # fmt: skip
            made.setdefault(summary.event_id, []).append(
                (m.destination, m.route, m.status, m.outbox_id is not None)
            )
    assert made == {
        "e0": [("a", "r1", "pending", True), ("b", "r2", "muted", True),
               ("c", "r3", "pending", True)],
        "e1": [("c", "", "silenced", True)],
        "e3": [("d", "", "grouped", False), ("a", "", "pending", True)],
    }  # fmt: skip


async def test_an_events_outcome_is_its_most_pressing_messages_state(store: Store) -> None:
    await accept(store, ev("e1"), [msg("a"), msg("b"), msg("c")], 100.0)
    rows = {c.row.pace_key: c.row.id for c in (await store.claim(
        101.0, 161.0, rate=1000.0, burst=1000.0, limit=10)).claimed}  # fmt: skip

    async def outcome_after(settlement: Settlement) -> str:
        assert await store.settle(settlement) is Recording.RECORDED
        (summary,) = (await store.history_events(EventFilter(), None, 10)).items
        return summary.outcome

    sent = Settlement(rows["slack:a"], "slack:a", Status.SENT, Reason.OK, 102.0)
    assert await outcome_after(sent) == "pending"  # b and c are still to go
    retry = Settlement(rows["slack:b"], "slack:b", Status.PENDING, Reason.SERVER_ERROR, 102.0,
                       "boom", next_attempt_at=110.0)  # fmt: skip
    assert await outcome_after(retry) == "retrying"  # over c, still pending
    dead = Settlement(rows["slack:c"], "slack:c", Status.DEAD, Reason.CHANNEL, 102.0,
                      "channel_not_found")  # fmt: skip
    assert await outcome_after(dead) == "dead"  # over b, retrying
    (again,) = [c.row.id for c in (await store.claim(
        110.0, 170.0, rate=1000.0, burst=1000.0, limit=10)).claimed]  # fmt: skip
    late = Settlement(again, "slack:b", Status.SENT, Reason.OK, 111.0)
    assert await outcome_after(late) == "dead"  # a dead message is not forgotten
    assert await store.drop_dead(None) == 1  # discarded: still what became of the event
    (summary,) = (await store.history_events(EventFilter(), None, 10)).items
    assert summary.outcome == "dead"
