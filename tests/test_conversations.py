"""Conversations against the fake Slack over HTTP: threads, in-place updates, digests, repeat
suppression and quiet hours, with the real pipeline, store and worker (and restarts between),
on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeslack import FakeSlack
from harness import Rig, with_id
from harness import event_body as sample
from harness import sample as shipped

from relay.http.streams import StreamLimits, consume_stream
from relay.records import Status
from relay.render.formats.slack import payload

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [test-secret]}
  deck: {provider: deck, secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]}
  tabstack: {provider: tabstack, token: test-token}
slack: {token: xoxb-test-token, api_url: "%(api)s"}
destinations:
  ops: {type: slack, channel: "#browser-ops"}
  batches: {type: slack, channel: "#browser-batches"}
  repeats: {type: slack, channel: "#browser-repeats"}
  quiet: {type: slack, channel: "#browser-quiet"}
  hook: {type: webhook, url: "%(hook)s"}
time_intervals:
  always:
    - times: [{start_time: "00:00", end_time: "24:00"}]
  never:
    - weekdays: [monday]
      times: [{start_time: "00:00", end_time: "00:00"}]
routes:
  - name: muted
    match: {source: anchor, type: task.cancelled}
    to: [quiet]
    mute_during: [never, always]
  - name: hushed
    match: {source: anchor, type: task.healed}
    to: [quiet]
    mention: ["@here"]
    mentions_off_during: [always]
  - name: batch-failures
    match: {source: anchor, type: session.failed, when: [{path: batch_id, exists: true}]}
    to: [batches]
    group: {by: [type, data.batch_id], wait: 1s, interval: 30s, show: 5}
  - name: flaky
    match: {source: anchor, type: task.failed, when: [{path: flaky, exists: true}]}
    to: [repeats]
    repeat: {key: [data.task_id, data.error.type], interval: 1h}
  - name: webhook-threads
    match: {source: anchor, type: identity.*}
    to: [hook]
    thread: auto
  - name: everything
    to: [ops]
    thread: auto
pacing: {rate: 50, burst: 50}
"""


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    channels = {
        "browser-ops": "C0OPS00001",
        "browser-batches": "C0BATCHES1",
        "browser-repeats": "C0REPEATS1",
        "browser-quiet": "C0QUIET001",
        "browser-identity": "C0IDENTITY",
    }
    hooks = {"identity-hook": "browser-identity"}
    with FakeSlack(channels=channels, hooks=hooks) as fake:
        yield fake


def config_text(slack: FakeSlack) -> str:
    return CONFIG % {"api": slack.api_url, "hook": slack.webhook_url("identity-hook")}


@pytest.fixture
async def rig(database: str, slack: FakeSlack, tmp_path: Path) -> AsyncIterator[Rig]:
    slack.reset()
    async with Rig(config_text(slack), database, tmp_path) as r:
        yield r


# ---------------------------------------------------------------- threads


async def test_anchor_session_events_read_as_one_thread_across_a_restart(
    rig: Rig, slack: FakeSlack
) -> None:
    await rig.accept("anchor", with_id(sample("anchor", "task.completed"), "a1"))
    await rig.settle()
    await rig.restart()  # the thread map lives in the store
    await rig.accept("anchor", with_id(sample("anchor", "session.completed"), "a2"))
    await rig.accept("anchor", with_id(sample("anchor", "task.failed"), "a3"))
    await rig.settle()
    await rig.restart()
    # late: the recording is ready after the task and the session ended
    await rig.accept("anchor", with_id(sample("anchor", "session.recording.ready"), "a4"))
    await rig.settle()

    parent, *replies = slack.messages_in("#browser-ops")
    assert parent.thread_ts is None
    assert parent.text is not None and "Task completed" in parent.text
    assert [r.thread_ts for r in replies] == [parent.ts] * 3
    assert [r.reply_broadcast for r in replies] == [False, True, False]  # the failure too
    assert [r.requested_thread_ts for r in replies] == [parent.ts] * 3


async def test_sessions_do_not_share_threads(rig: Rig, slack: FakeSlack) -> None:
    await rig.accept("anchor", with_id(sample("anchor", "task.completed", session_id="s1"), "b1"))
    await rig.accept("anchor", with_id(sample("anchor", "task.completed", session_id="s2"), "b2"))
    await rig.accept("anchor", with_id(sample("anchor", "task.completed", session_id="s1"), "b3"))
    await rig.settle()
    first, second, third = slack.messages_in("#browser-ops")
    assert first.thread_ts is None and second.thread_ts is None
    assert third.thread_ts == first.ts


async def test_intervention_request_is_updated_when_resolved(rig: Rig, slack: FakeSlack) -> None:
    await rig.accept("anchor", with_id(sample("anchor", "intervention.requested"), "i1"))
    await rig.settle()
    await rig.restart()
    await rig.accept("anchor", with_id(sample("anchor", "intervention.resolved"), "i2"))
    await rig.settle()

    (request,) = slack.messages_in("#browser-ops")
    assert request.text is not None and "needs a human" in request.text
    (update,) = slack.updates
    assert update.ts == request.ts
    now = slack.current(request.channel, request.ts)
    assert "resolved" in now["text"].lower()
    assert "dana@example.com" in json.dumps(now["blocks"])


def intervention(kind: str, event_id: str, session: str = "ses_iv", **ids: str) -> dict[str, Any]:
    """An Anchor intervention event of `session` carrying exactly the id fields given."""
    body = sample("anchor", f"intervention.{kind}")
    del body["data"]["intervention_id"]
    body["data"].update(session_id=session, **ids)
    return with_id(body, event_id)


def reads(slack: FakeSlack, message: Any) -> str:
    return str(slack.current(message.channel, message.ts)["text"]).lower()


@pytest.mark.parametrize("field", ["requestId", "request_id", "intervention_id", None])
async def test_an_intervention_resolution_updates_its_request_whatever_its_id_is_called(
    rig: Rig, slack: FakeSlack, field: str | None
) -> None:
    ids = {field: "a1b2c3"} if field else {}  # None: no id at all, paired by the session
    await rig.accept("anchor", intervention("requested", f"q-{field}", **ids))
    await rig.settle()
    await rig.restart()  # which message is the open request lives in the store
    await rig.accept("anchor", intervention("resolved", f"r-{field}", **ids))
    await rig.settle()

    (request,) = slack.messages_in("#browser-ops")  # no reply: the alert itself is resolved
    assert [u.ts for u in slack.updates] == [request.ts]
    assert "resolved" in reads(slack, request) and "needs a human" not in reads(slack, request)


async def test_two_open_requests_in_a_session_are_resolved_by_id_then_the_latest(
    rig: Rig, slack: FakeSlack
) -> None:
    await rig.accept("anchor", intervention("requested", "q1", requestId="req-1"))
    await rig.accept("anchor", intervention("requested", "q2", requestId="req-2"))
    await rig.settle()
    first, second = slack.messages_in("#browser-ops")
    assert second.thread_ts == first.ts  # the session's thread

    await rig.accept("anchor", intervention("resolved", "r1", requestId="req-1"))
    await rig.settle()
    assert [u.ts for u in slack.updates] == [first.ts]  # by its id, though not the latest
    await rig.accept("anchor", intervention("resolved", "r2"))  # no id: the latest open one
    await rig.settle()
    assert [u.ts for u in slack.updates] == [first.ts, second.ts]
    assert "resolved" in reads(slack, first) and "resolved" in reads(slack, second)
    assert len(slack.messages_in("#browser-ops")) == 2


async def test_an_unpaired_resolution_replies_in_the_sessions_thread(
    rig: Rig, slack: FakeSlack
) -> None:
    await rig.accept("anchor", intervention("requested", "q1"))
    await rig.accept("anchor", intervention("resolved", "r1"))  # resolves it, closing it
    await rig.settle()
    await rig.accept("anchor", intervention("resolved", "r2"))  # nothing open any more
    await rig.accept("anchor", intervention("resolved", "r3", requestId="never-seen"))
    await rig.settle()

    request, *replies = slack.messages_in("#browser-ops")
    assert [u.ts for u in slack.updates] == [request.ts]
    assert [r.thread_ts for r in replies] == [request.ts, request.ts]
    assert all("intervention resolved" in (r.text or "").lower() for r in replies)
    assert "resolved" in reads(slack, request)  # the request still reads resolved


async def test_webhook_destinations_degrade_to_flat_posts(rig: Rig, slack: FakeSlack) -> None:
    await rig.accept("anchor", with_id(sample("anchor", "identity.authenticated"), "w1"))
    await rig.accept("anchor", with_id(sample("anchor", "identity.authentication_failed"), "w2"))
    await rig.settle()
    hooked = [m for m in slack.messages if m.via == "webhook:identity-hook"]
    assert len(hooked) == 2
    assert all(m.thread_ts is None for m in hooked)
    assert not slack.updates
    assert [r.last_reason for r in await rig.store.rows(Status.SENT)] == ["ok", "ok"]


# ---------------------------------------------------------------- updates in place


def deck_run(status: str, event_id: str, created: str) -> dict[str, Any]:
    body = sample("deck", f"task_run.{status}", id="trun_order1", status=status)
    return {**body, "id": event_id, "created_at": created}


async def test_deck_task_run_is_one_message_whose_status_moves(rig: Rig, slack: FakeSlack) -> None:
    await rig.accept("deck", deck_run("queued", "d1", "2025-01-15T09:30:00Z"))
    await rig.settle()
    await rig.restart()
    await rig.accept("deck", deck_run("running", "d2", "2025-01-15T09:30:05Z"))
    await rig.accept("deck", deck_run("completed", "d3", "2025-01-15T09:31:15Z"))
    await rig.settle()

    (message,) = slack.messages_in("#browser-ops")
    assert [u.ts for u in slack.updates] == [message.ts, message.ts]
    assert "queued" in (message.text or "").lower()
    assert "completed" in slack.current(message.channel, message.ts)["text"].lower()


async def test_out_of_order_deck_events_never_overwrite_a_newer_state(
    rig: Rig, slack: FakeSlack
) -> None:
    await rig.accept("deck", deck_run("queued", "o1", "2025-01-15T09:30:00Z"))
    await rig.accept("deck", deck_run("completed", "o3", "2025-01-15T09:31:15Z"))
    await rig.settle()
    # arrives last, happened second
    await rig.accept("deck", deck_run("running", "o2", "2025-01-15T09:30:05Z"))
    await rig.settle()

    (message,) = slack.messages_in("#browser-ops")
    assert len(slack.updates) == 1
    assert "completed" in slack.current(message.channel, message.ts)["text"].lower()
    reasons = {r.event_id: r.last_reason for r in await rig.store.rows(Status.SENT)}
    assert reasons == {"o1": "ok", "o3": "ok", "o2": "superseded"}


async def test_a_failed_run_updates_the_parent_and_is_broadcast(rig: Rig, slack: FakeSlack) -> None:
    await rig.accept("deck", deck_run("running", "f1", "2025-01-15T09:30:00Z"))
    failed = sample("deck", "task_run.failed", id="trun_order1")
    await rig.accept("deck", {**failed, "id": "f2", "created_at": "2025-01-15T09:31:00Z"})
    await rig.settle()

    parent, reply = slack.messages_in("#browser-ops")
    assert reply.thread_ts == parent.ts and reply.reply_broadcast
    assert "failed" in slack.current(parent.channel, parent.ts)["text"].lower()


async def test_a_deleted_parent_is_posted_anew(rig: Rig, slack: FakeSlack) -> None:
    await rig.accept("deck", deck_run("queued", "x1", "2025-01-15T09:30:00Z"))
    await rig.settle()
    slack.script("#browser-ops", ["message_not_found"])  # someone deleted it
    await rig.accept("deck", deck_run("running", "x2", "2025-01-15T09:30:05Z"))
    await rig.settle()
    _first, second = slack.messages_in("#browser-ops")
    assert second.thread_ts is None and "started" in (second.text or "").lower()
    assert not await rig.store.rows(Status.DEAD)


async def test_tabstack_run_streams_through_one_parent_message(rig: Rig, slack: FakeSlack) -> None:
    stream = shipped("tabstack", "run-success.sse").read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        for line in stream.splitlines(keepends=True):
            yield line

    summary = await consume_stream(
        chunks(),
        run_id="run_live",
        provider=rig.runtime.providers["tabstack"],  # type: ignore[arg-type]
        pipeline=rig.pipeline,
        limits=StreamLimits(progress_every=0.0),
    )
    assert summary.story_events > 3  # started, progress..., completed
    await rig.settle()

    (parent,) = slack.messages_in("#browser-ops")
    assert "started" in (parent.text or "").lower()
    texts = [u.text or "" for u in slack.updates]
    assert all(u.ts == parent.ts for u in slack.updates)
    assert any("in progress" in t for t in texts)
    final = slack.current(parent.channel, parent.ts)
    assert "completed" in final["text"].lower()
    assert "$19.99" in json.dumps(final["blocks"])


# ---------------------------------------------------------------- digests


async def test_a_burst_of_25_failures_becomes_one_digest(rig: Rig, slack: FakeSlack) -> None:
    for i in range(25):
        body = sample("anchor", "session.failed", batch_id="bat_7", session_id=f"ses_{i}")
        await rig.accept("anchor", with_id(body, f"g{i}"))
    stats = {s.destination: s for s in await rig.store.stats()}
    assert stats["batches"].digesting == 25  # parked, durable, not yet posted
    await rig.settle()

    (digest,) = slack.messages_in("#browser-batches")
    assert digest.text is not None and "25 events: session.failed" in digest.text
    shown = json.dumps(digest.blocks)
    assert "25 x `session.failed`" in shown
    assert "and 20 more events" in shown
    assert shown.count("\\u2022 ") + shown.count("• ") == 5


async def test_a_digest_lists_ids_in_full(rig: Rig, slack: FakeSlack) -> None:
    # five sessions whose ids differ only after their 8th character, in the middle
    sessions = [f"ses_8d2c1fda-{i}e7f-4a1b-9c3d-5e6f7a8b9c0d" for i in range(5)]
    for i, session in enumerate(sessions):
        body = sample("anchor", "session.failed", batch_id="bat_ids", session_id=session)
        await rig.accept("anchor", with_id(body, f"ids{i}"))
    await rig.settle()

    (digest,) = slack.messages_in("#browser-batches")
    lines = [
        line
        for block in digest.blocks or []
        for line in block.get("text", {}).get("text", "").splitlines()
        if line.startswith("• ")
    ]
    assert len(lines) == len(set(lines)) == 5  # five lines a reader tells apart
    for line, session in zip(lines, sessions, strict=True):
        assert session in line


async def test_digest_survives_a_restart_and_a_lone_event_posts_as_itself(
    rig: Rig, slack: FakeSlack
) -> None:
    for i in range(3):
        body = sample("anchor", "session.failed", batch_id="bat_8", session_id=f"ses_{i}")
        await rig.accept("anchor", with_id(body, f"r{i}"))
    await rig.restart()  # before the group's wait is over
    lone = sample("anchor", "session.failed", batch_id="bat_9")
    await rig.accept("anchor", with_id(lone, "r9"))
    await rig.settle()

    texts = sorted(m.text or "" for m in slack.messages_in("#browser-batches"))
    assert len(texts) == 2
    assert any("3 events: session.failed" in t for t in texts)
    assert any("Session failed" in t for t in texts), texts


async def test_events_after_a_digest_wait_for_the_group_interval(
    rig: Rig, slack: FakeSlack
) -> None:
    now = [time.time()]
    rig.clock = lambda: now[0]
    await rig.restart()
    rig.worker.clock = rig.clock
    for i in range(2):
        body = sample("anchor", "session.failed", batch_id="bat_5", session_id=f"s{i}")
        await rig.accept("anchor", with_id(body, f"n{i}"))
    now[0] += 2  # past group.wait (1 s)
    await rig.settle()
    assert len(slack.messages_in("#browser-batches")) == 1
    for i in range(2, 5):
        body = sample("anchor", "session.failed", batch_id="bat_5", session_id=f"s{i}")
        await rig.accept("anchor", with_id(body, f"n{i}"))
    now[0] += 5  # past wait, not past interval (30 s): still waiting
    await asyncio.sleep(0.5)
    assert len(slack.messages_in("#browser-batches")) == 1
    now[0] += 30
    await rig.settle()
    _first, second = slack.messages_in("#browser-batches")
    assert "3 events" in (second.text or "")


# ---------------------------------------------------------------- repeats


async def test_repeated_failure_updates_one_message_with_a_counter(
    rig: Rig, slack: FakeSlack
) -> None:
    for i in range(5):
        body = sample("anchor", "task.failed", flaky=True)
        await rig.accept("anchor", with_id(body, f"p{i}"))
    other = sample("anchor", "task.failed", flaky=True, task_id="tsk_other")
    await rig.accept("anchor", with_id(other, "p9"))
    await rig.settle()

    first, second = slack.messages_in("#browser-repeats")
    assert len(slack.updates) == 4
    now = slack.current(first.channel, first.ts)
    assert "Seen 5 times" in json.dumps(now["blocks"])
    assert "(seen 5 times)" in now["text"]
    assert "Seen" not in json.dumps(second.blocks)


# ---------------------------------------------------------------- quiet hours


async def test_muted_events_are_recorded_not_delivered(rig: Rig, slack: FakeSlack) -> None:
    await rig.accept("anchor", with_id(sample("anchor", "task.cancelled"), "m1"))
    await rig.settle()
    assert slack.messages_in("#browser-quiet") == []
    (row,) = await rig.store.rows(Status.MUTED)
    assert row.event_id == "m1" and payload(row.message)["blocks"]
    stats = {s.destination: s for s in await rig.store.stats()}
    assert stats["quiet"].muted == 1


async def test_mentions_are_dropped_during_their_interval(rig: Rig, slack: FakeSlack) -> None:
    await rig.accept("anchor", with_id(sample("anchor", "task.healed"), "h1"))
    await rig.settle()
    (message,) = slack.messages_in("#browser-quiet")
    assert "<!here>" not in (message.text or "")
    assert "<!here>" not in json.dumps(message.blocks)
