"""Conversations in Mattermost, end to end through the real pipeline, store and worker (and
restarts between) against the fake Mattermost over HTTP, on SQLite and on PostgreSQL: a thread
is a root post and replies naming it as `root_id`, an update is a patch of the root post, a
deleted post is posted anew, a repeat patches its first post with a counter; through an
incoming webhook every message is a flat post."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fakemattermost import ALERTS, DEFAULT_HOOKS, EVENTS, TOKEN, FakeMattermost
from harness import Rig, with_id
from harness import event_body as sample
from test_conversations import deck_run

from relay.records import Status

HOOK = next(iter(DEFAULT_HOOKS))
CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [test-secret]}
  deck: {provider: deck, secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]}
destinations:
  ops: {type: mattermost, url: "%(url)s", token: "%(token)s", channel_id: %(alerts)s}
  repeats: {type: mattermost, url: "%(url)s", token: "%(token)s", channel_id: %(events)s}
  hook: {type: mattermost, webhook_url: "%(hook)s"}
routes:
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


def config_text(fake: FakeMattermost) -> str:
    return CONFIG % {
        "url": fake.url,
        "token": TOKEN,
        "alerts": ALERTS,
        "events": EVENTS,
        "hook": fake.webhook_url(HOOK),
    }


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMattermost]:
    with FakeMattermost() as server:
        yield server


@pytest.fixture
async def rig(database: str, fake: FakeMattermost, tmp_path: Path) -> AsyncIterator[Rig]:
    fake.reset()
    async with Rig(config_text(fake), database, tmp_path, http=True) as r:
        yield r


def reads(fake: FakeMattermost, post_id: str) -> str:
    now = fake.current(post_id)
    return (now["message"] + str(now["props"].get("attachments"))).lower()


async def test_a_session_reads_as_one_thread_across_a_restart(
    rig: Rig, fake: FakeMattermost
) -> None:
    await rig.accept("anchor", with_id(sample("anchor", "task.completed"), "a1"))
    await rig.settle()
    await rig.restart()  # the thread's root post id lives in the store
    await rig.accept("anchor", with_id(sample("anchor", "session.completed"), "a2"))
    await rig.accept("anchor", with_id(sample("anchor", "task.failed"), "a3"))
    await rig.settle()

    root, *replies = fake.posts_in(ALERTS)
    assert root.root_id == "" and "Task completed" in root.message
    assert [r.root_id for r in replies] == [root.id, root.id]
    assert [r.via for r in fake.posts] == ["api"] * 3


async def test_a_deck_run_is_one_post_whose_status_moves(rig: Rig, fake: FakeMattermost) -> None:
    await rig.accept("deck", deck_run("queued", "d1", "2025-01-15T09:30:00Z"))
    await rig.settle()
    await rig.restart()
    await rig.accept("deck", deck_run("running", "d2", "2025-01-15T09:30:05Z"))
    await rig.accept("deck", deck_run("completed", "d3", "2025-01-15T09:31:15Z"))
    await rig.settle()

    (post,) = fake.posts_in(ALERTS)
    assert "queued" in post.message.lower()
    assert [p.id for p in fake.patches] == [post.id, post.id]
    assert "completed" in fake.current(post.id)["message"].lower()


async def test_a_failed_run_updates_its_post_and_replies_under_it(
    rig: Rig, fake: FakeMattermost
) -> None:
    await rig.accept("deck", deck_run("running", "f1", "2025-01-15T09:30:00Z"))
    failed = sample("deck", "task_run.failed", id="trun_order1")
    await rig.accept("deck", {**failed, "id": "f2", "created_at": "2025-01-15T09:31:00Z"})
    await rig.settle()

    root, reply = fake.posts_in(ALERTS)
    assert reply.root_id == root.id
    assert "failed" in fake.current(root.id)["message"].lower()


async def test_a_deleted_post_is_posted_anew(rig: Rig, fake: FakeMattermost) -> None:
    await rig.accept("deck", deck_run("queued", "x1", "2025-01-15T09:30:00Z"))
    await rig.settle()
    (first,) = fake.posts_in(ALERTS)
    fake.delete_post(first.id)  # someone deleted it in Mattermost
    await rig.accept("deck", deck_run("running", "x2", "2025-01-15T09:30:05Z"))
    await rig.settle()

    _first, second = fake.posts_in(ALERTS)
    assert second.root_id == "" and "started" in second.message.lower()
    assert fake.patches == []  # the patch was refused, nothing was edited
    assert not await rig.store.rows(Status.DEAD)
    # and the new post is the one later events update
    await rig.accept("deck", deck_run("completed", "x3", "2025-01-15T09:31:15Z"))
    await rig.settle()
    assert [p.id for p in fake.patches] == [second.id]


async def test_a_repeated_failure_patches_one_post_with_a_counter(
    rig: Rig, fake: FakeMattermost
) -> None:
    for i in range(3):
        await rig.accept("anchor", with_id(sample("anchor", "task.failed", flaky=True), f"p{i}"))
    await rig.settle()

    (post,) = fake.posts_in(EVENTS)
    assert [p.id for p in fake.patches] == [post.id, post.id]
    assert "(seen 3 times)" in fake.current(post.id)["message"]
    assert "seen 3 times · first" in reads(fake, post.id)


async def test_through_a_webhook_a_thread_degrades_to_flat_posts(
    rig: Rig, fake: FakeMattermost
) -> None:
    await rig.accept("anchor", with_id(sample("anchor", "identity.authenticated"), "w1"))
    await rig.accept("anchor", with_id(sample("anchor", "identity.authentication_failed"), "w2"))
    await rig.settle()

    hooked = [p for p in fake.posts if p.via == f"webhook:{HOOK}"]
    assert len(hooked) == 2 and all(p.root_id == "" for p in hooked)
    assert fake.patches == []
    assert [r.last_reason for r in await rig.store.rows(Status.SENT)] == ["ok", "ok"]
