"""Google Chat end to end: the real pipeline, store and worker against the fake Google Chat over
HTTP, on SQLite and on the real PostgreSQL server (conversations as threads, updates and repeats
as replies in them, a rate limit retried, a refused payload dead at once, webhooks of one space
paced together), and `relay serve` as a real process delivering a signed event."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakegooglechat import API_KEY, FakeGoogleChat
from harness import RelayProcess, Rig
from harness import event_body as sample
from harness import sample as shipped
from signing import ANCHOR_SECRET, anchor_headers

from relay.config import parse_config
from relay.delivery.policy import Pacing, settings
from relay.records import Status
from relay.runtime import build_runtime

REPLY = {"messageReplyOption": "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"}
CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [test-secret]}
  deck: {provider: deck, secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]}
destinations:
  chat: {type: google_chat, webhook_url: "%(alerts)s", pacing: {rate: 50, burst: 50}}
  chat-bis: {type: google_chat, webhook_url: "%(bis)s"}
  repeats: {type: google_chat, webhook_url: "%(events)s", pacing: {rate: 50, burst: 50}}
routes:
  - name: flaky
    match: {source: anchor, type: task.failed, when: [{path: flaky, exists: true}]}
    to: [repeats]
    repeat: {key: [data.task_id, data.error.type], interval: 1h}
  - name: one-space
    match: {source: anchor, type: identity.*}
    to: [chat, chat-bis]
  - name: everything
    to: [chat]
    thread: auto
"""


@pytest.fixture(scope="module")
def chat() -> Iterator[FakeGoogleChat]:
    with FakeGoogleChat() as fake:
        yield fake


def config_text(chat: FakeGoogleChat) -> str:
    urls = {
        "alerts": chat.webhook_url("alerts"),
        "bis": chat.webhook_url("alerts-bis"),
        "events": chat.webhook_url("events"),
    }
    return CONFIG % urls


@pytest.fixture
async def rig(database: str, chat: FakeGoogleChat, tmp_path: Path) -> AsyncIterator[Rig]:
    chat.reset()
    async with Rig(config_text(chat), database, tmp_path, http=True, pacing="config") as r:
        yield r


async def test_a_session_reads_as_one_thread_across_restarts(
    rig: Rig, chat: FakeGoogleChat
) -> None:
    await rig.accept("anchor", sample("anchor", "task.completed", "a1"))
    await rig.settle()
    await rig.restart()  # what relay remembers lives in the store; the thread key in Google
    await rig.accept("anchor", sample("anchor", "session.completed", "a2"))
    await rig.accept("anchor", sample("anchor", "task.failed", "a3"))
    await rig.settle()

    first, *replies = chat.messages_in("AAAAalerts1")
    assert first.new_thread and len(replies) == 2
    assert all(r.thread == first.thread and not r.new_thread for r in replies)
    assert first.text is not None and "Task completed" in first.text
    assert all(r.query == REPLY for r in chat.requests)
    sent = await rig.store.rows(Status.SENT)
    assert [row.attempts for row in sent] == [1, 1, 1]


async def test_a_deck_task_run_posts_each_new_state_as_a_reply_in_its_thread(
    rig: Rig, chat: FakeGoogleChat
) -> None:
    def run(status: str, event_id: str, created: str) -> dict[str, Any]:
        body = sample("deck", f"task_run.{status}", event_id, id="trun_gc1", status=status)
        return {**body, "created_at": created}

    await rig.accept("deck", run("queued", "d1", "2025-01-15T09:30:00Z"))
    await rig.settle()
    await rig.accept("deck", run("running", "d2", "2025-01-15T09:30:05Z"))
    await rig.accept("deck", run("completed", "d3", "2025-01-15T09:31:15Z"))
    await rig.settle()

    queued, running, completed = chat.messages_in("AAAAalerts1")
    assert queued.new_thread and queued.thread == running.thread == completed.thread
    assert queued.text is not None and "queued" in queued.text.lower()
    assert completed.text is not None and "completed" in completed.text.lower()
    assert [row.last_reason for row in await rig.store.rows(Status.SENT)] == ["ok"] * 3


async def test_a_repeat_replies_in_the_first_messages_thread_with_its_count(
    rig: Rig, chat: FakeGoogleChat
) -> None:
    await rig.accept("anchor", sample("anchor", "task.failed", "r1", flaky=True))
    await rig.settle()
    await rig.accept("anchor", sample("anchor", "task.failed", "r2", flaky=True))
    await rig.settle()

    first, again = chat.messages_in("AAAAevents1")
    assert again.thread == first.thread and not again.new_thread
    assert again.body["thread"] == {"name": first.thread}  # no conversation key: by name
    assert again.text is not None and again.text.endswith("(seen 2 times)")


async def test_a_rate_limit_is_retried_and_a_refused_payload_is_dead_at_once(
    rig: Rig, chat: FakeGoogleChat
) -> None:
    chat.script("alerts", ["ratelimited", "status:500"])
    await rig.accept("anchor", sample("anchor", "task.completed", "x1", session_id="s-x1"))
    await rig.settle()
    (delivered,) = await rig.store.rows(Status.SENT)
    assert delivered.attempts == 3 and len(chat.messages) == 1

    chat.script("alerts", ["status:400"])
    await rig.accept("anchor", sample("anchor", "task.completed", "x2", session_id="s-x2"))
    await rig.settle()
    (dead,) = await rig.store.rows(Status.DEAD)
    assert (dead.attempts, dead.last_reason, dead.last_error) == (
        1,
        "invalid_payload",
        "INVALID_ARGUMENT",
    )
    assert len(chat.requests) == 4  # 429, 500, sent; then the 400, never tried again


async def test_webhooks_of_one_space_are_paced_together_at_one_a_second(
    chat: FakeGoogleChat, tmp_path: Path
) -> None:
    chat.reset()
    chat.set_rate_limit(1)  # Google's quota: one request a second per space, for all webhooks
    try:
        async with Rig(config_text(chat), "relay.db", tmp_path, http=True, pacing="config") as rig:
            # chat says 50 a second, chat-bis nothing: the space they share goes at Google's pace
            assert rig.runtime.paces[rig.runtime.pace_keys["chat"]] == (1.0, 1.0)
            await rig.accept("anchor", sample("anchor", "identity.authenticated", "p1"))
            await rig.accept("anchor", sample("anchor", "identity.authenticated", "p2"))
            await rig.settle()
    finally:
        chat.set_rate_limit(None)
    arrivals = [m.received for m in chat.messages_in("AAAAalerts1")]
    assert len(arrivals) == 4
    assert {m.hook for m in chat.messages} == {"alerts", "alerts-bis"}
    assert all(r.status == 200 for r in chat.requests)  # never over Google's quota
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.9, gaps


def test_pacing_defaults_to_googles_quota_unless_the_destination_says() -> None:
    urls = {
        "alerts": "https://chat.googleapis.com/v1/spaces/A/messages?key=k&token=t",
        "bis": "https://chat.googleapis.com/v1/spaces/B/messages?key=k&token=u",
        "events": "",
    }
    runtime = build_runtime(parse_config(CONFIG % urls, Path("relay.yaml"), {}))
    pacing: Pacing = settings(runtime.config, runtime.paces)[0]
    assert pacing.keys[runtime.pace_keys["chat"]] == (50.0, 50.0)
    assert pacing.keys[runtime.pace_keys["chat-bis"]] == (1.0, 1.0)


# ---------------------------------------------------------------- relay serve


SERVE_CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
destinations:
  chat: {type: google_chat, webhook_url: "${GOOGLE_CHAT_WEBHOOK_URL}"}
routes:
  - match: {source: anchor, type: task.failed}
    to: [chat]
    mention: ["@here"]
default: {to: [chat]}
"""


def test_relay_serve_delivers_a_signed_event_to_google_chat(
    chat: FakeGoogleChat, relay_process: type[RelayProcess], tmp_path: Path
) -> None:
    chat.reset()
    config = tmp_path / "relay.yaml"
    config.write_text(SERVE_CONFIG, encoding="utf-8")
    url = chat.webhook_url("alerts")
    env = {
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "GOOGLE_CHAT_WEBHOOK_URL": url,
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
        "RELAY_LOG_LEVEL": "DEBUG",
    }
    relay = relay_process(config, env, tmp_path).start()
    body = shipped("anchor", "task.failed.json").read_bytes()
    answer = httpx.post(
        relay.url + "/hooks/anchor", content=body, headers=anchor_headers(body, int(time.time()))
    )
    assert answer.status_code == 202, answer.text
    (message,) = chat.wait_for_messages(1)
    assert message.text is not None
    assert message.text.startswith("<users/all> \u274c Task failed: invalid credentials")
    assert message.cards is not None
    assert message.cards[0]["card"]["header"]["title"] == "\u274c Task failed: invalid credentials"
    relay.terminate()
    logs = relay.stderr() + relay.stdout()
    assert "delivered" in logs
    assert chat.token("alerts") not in logs and API_KEY not in logs and url not in logs
