"""Discord destinations through the real pipeline, store and worker against the fake Discord over
HTTP (SQLite and PostgreSQL): a forum post per conversation with its replies, edits in place,
a deleted message posted anew, a repeat counter, a text channel's flat replies; `relay serve`
end to end; the config and `relay check`."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakediscord import FakeDiscord, Hook
from harness import ROOT, RelayProcess, Rig, sample
from harness import event_body as event
from signing import ANCHOR_SECRET, anchor_headers

from relay.assembly import senders_for
from relay.config import load_config
from relay.delivery.destinations import describe, kind, pace_keys, paces
from relay.errors import ConfigError
from relay.ops.check import check
from relay.records import Status
from relay.runtime import build_runtime

ROLE = "discord:role:123456789012345678"
HOOKS = {
    "forum": Hook("1100000000000000010", "tok-forum", "1200000000000000010", forum=True),
    "text": Hook("1100000000000000011", "tok-text", "1200000000000000011"),
}
CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [test-secret]}
  deck: {provider: deck, secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]}
destinations:
  forum: {type: discord, webhook_url: "%(forum)s", forum: true}
  text: {type: discord, webhook_url: "%(text)s"}
routes:
  - name: flaky
    match: {source: anchor, type: task.failed, when: [{path: flaky, exists: true}]}
    to: [text]
    repeat: {key: [data.task_id, data.error.type], interval: 1h}
  - name: text-sessions
    match: {source: anchor, when: [{path: channel, equals: text}]}
    to: [text]
    thread: auto
  - name: sessions
    match: {source: anchor}
    to: [forum]
    thread: auto
    mention: ["@here", "%(role)s", U0123ABCD]
  - name: runs
    match: {source: deck}
    to: [text]
    thread: auto
pacing: {rate: 50, burst: 50}
"""


@pytest.fixture(scope="module")
def discord() -> Iterator[FakeDiscord]:
    with FakeDiscord(hooks=HOOKS, rate_limits=False) as fake:
        yield fake


def config_text(discord: FakeDiscord) -> str:
    return CONFIG % {"forum": discord.url("forum"), "text": discord.url("text"), "role": ROLE}


@pytest.fixture
async def rig(database: str, discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[Rig]:
    discord.reset()
    async with Rig(config_text(discord), database, tmp_path, http=True) as r:
        yield r
    assert all(q.allowed_mentions_sent for q in discord.requests), "a request without allow-list"


def title(discord: FakeDiscord, message_id: str) -> str:
    return str(discord.current(message_id)["embeds"][0]["title"])


async def test_a_session_is_one_forum_post_its_events_reply_in_it(
    rig: Rig, discord: FakeDiscord
) -> None:
    await rig.accept("anchor", event("anchor", "task.completed", "a1"))
    await rig.settle()
    await rig.restart()  # which post is the session's lives in the store
    await rig.accept("anchor", event("anchor", "session.completed", "a2"))
    await rig.accept("anchor", event("anchor", "session.recording.ready", "a3"))
    await rig.accept("anchor", event("anchor", "task.completed", "b1", session_id="other"))
    await rig.settle()

    post, *replies, other = discord.messages_of("forum")
    assert post.started_thread and post.thread_name and "Task completed" in post.thread_name
    assert [r.thread_id for r in replies] == [post.id, post.id]
    assert not any(r.started_thread for r in replies)
    assert other.started_thread  # another session, another post
    assert post.content == f"@here <@&{ROLE.rsplit(':', 1)[1]}>"  # U0123ABCD is Slack's
    assert post.allowed_mentions == {"parse": ["everyone"], "roles": [ROLE.rsplit(":", 1)[1]]}


async def test_a_resolved_intervention_edits_its_request_in_the_forum_post(
    rig: Rig, discord: FakeDiscord
) -> None:
    await rig.accept("anchor", event("anchor", "intervention.requested", "i1"))
    await rig.settle()
    await rig.restart()
    await rig.accept("anchor", event("anchor", "intervention.resolved", "i2"))
    await rig.settle()

    (request,) = discord.messages_of("forum")
    (edit,) = discord.edits
    assert edit.id == request.id
    assert "resolved" in title(discord, request.id).lower()
    patch = next(r for r in discord.requests if r.method == "PATCH")
    assert patch.query["thread_id"] == request.id  # a forum post's thread has its id
    assert patch.body is not None and "allowed_mentions" in patch.body


def deck_run(status: str, event_id: str, created: str) -> dict[str, Any]:
    body = event("deck", f"task_run.{status}", event_id, id="trun_order1", status=status)
    return {**body, "created_at": created}


async def test_a_deck_run_is_one_message_edited_as_its_status_moves(
    rig: Rig, discord: FakeDiscord
) -> None:
    await rig.accept("deck", deck_run("queued", "d1", "2025-01-15T09:30:00Z"))
    await rig.settle()
    await rig.restart()
    await rig.accept("deck", deck_run("running", "d2", "2025-01-15T09:30:05Z"))
    await rig.accept("deck", deck_run("completed", "d3", "2025-01-15T09:31:15Z"))
    await rig.settle()

    (message,) = discord.messages_of("text")
    assert [e.id for e in discord.edits] == [message.id, message.id]
    assert "queued" in str(message.embeds[0]["title"]).lower()
    assert "completed" in title(discord, message.id).lower()
    assert all("thread_id" not in r.query for r in discord.requests)  # a text channel


async def test_in_a_text_channel_a_failure_edits_the_parent_and_replies_flat(
    rig: Rig, discord: FakeDiscord
) -> None:
    await rig.accept("deck", deck_run("running", "f1", "2025-01-15T09:30:00Z"))
    failed = event("deck", "task_run.failed", "f2", id="trun_order1")
    await rig.accept("deck", {**failed, "created_at": "2025-01-15T09:31:00Z"})
    await rig.settle()

    parent, reply = discord.messages_of("text")
    assert reply.thread_id is None  # no thread: a webhook cannot start one in a text channel
    assert "failed" in title(discord, parent.id).lower()
    assert not await rig.store.rows(Status.DEAD)


async def test_a_deleted_message_is_posted_anew(rig: Rig, discord: FakeDiscord) -> None:
    await rig.accept("deck", deck_run("queued", "x1", "2025-01-15T09:30:00Z"))
    await rig.settle()
    discord.delete_message(discord.messages_of("text")[0].id)
    await rig.accept("deck", deck_run("running", "x2", "2025-01-15T09:30:05Z"))
    await rig.settle()
    _first, second = discord.messages_of("text")
    assert "started" in str(second.embeds[0]["title"]).lower()
    assert not await rig.store.rows(Status.DEAD)


async def test_a_repeated_failure_edits_one_message_with_a_counter(
    rig: Rig, discord: FakeDiscord
) -> None:
    for i in range(4):
        await rig.accept("anchor", event("anchor", "task.failed", f"p{i}", flaky=True))
    await rig.settle()
    (message,) = discord.messages_of("text")
    assert len(discord.edits) == 3
    fields = discord.current(message.id)["embeds"][0]["fields"]
    assert fields[-1]["name"].endswith("Seen 4 times")
    assert fields[-1]["value"].startswith("first <t:")


async def test_a_session_in_a_text_channel_replies_flat(rig: Rig, discord: FakeDiscord) -> None:
    await rig.accept("anchor", event("anchor", "task.completed", "t1", channel="text"))
    await rig.accept("anchor", event("anchor", "session.completed", "t2", channel="text"))
    await rig.settle()
    assert [m.thread_id for m in discord.messages_of("text")] == [None, None]
    assert [r.last_reason for r in await rig.store.rows(Status.SENT)] == ["ok", "ok"]


# ---------------------------------------------------------------- relay serve, end to end


def test_relay_serve_posts_a_signed_event_to_discord(
    relay_process: type[RelayProcess], tmp_path: Path
) -> None:
    with FakeDiscord() as fake:  # Discord's own rate limits: relay's default pace keeps within
        config = tmp_path / "relay.yaml"
        config.write_text(
            "sources: {anchor: {provider: anchor, secrets: ['${ANCHOR_WEBHOOK_SECRET}']}}\n"
            "destinations:\n"
            "  chat: {type: discord, webhook_url: '${DISCORD_WEBHOOK_URL}'}\n"
            "routes: [{match: {source: anchor}, to: [chat], mention: ['@here']}]\n"
        )
        env = {
            "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
            "DISCORD_WEBHOOK_URL": fake.url("alerts"),
            "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
        }
        relay = relay_process(config, env, tmp_path).start()
        body = sample("anchor", "task.failed.json").read_bytes()
        headers = anchor_headers(body, int(time.time()))
        assert (
            httpx.post(relay.url + "/hooks/anchor", content=body, headers=headers).status_code
            == 202
        )
        (message,) = fake.wait_for_messages(1)
        assert message.embeds[0]["title"] == "❌ Task failed: invalid credentials"
        assert message.content == "@here"
        assert message.allowed_mentions == {"parse": ["everyone"]}
        assert message.components and message.components[0]["components"][0]["style"] == 5
        relay.terminate()
        logs = relay.stdout() + relay.stderr()
        assert "tok-alerts" not in logs  # the webhook's token never reaches a log


# ---------------------------------------------------------------- config and relay check


def config(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    return load_config(path, env or {})


BASE = "sources: {anchor: {provider: anchor, secrets: [s]}}\n"


def test_a_discord_destination_paces_by_its_webhook_and_never_shows_its_token(
    tmp_path: Path,
) -> None:
    url = "https://discord.com/api/webhooks/1234567890123/s3cr3t-token"
    loaded = config(BASE + f"destinations: {{d: {{type: discord, webhook_url: '{url}'}}}}\n",
                    tmp_path)  # fmt: skip
    destination = loaded.config.destinations["d"]
    keys = pace_keys(loaded.config, dry_run=False)
    assert keys == {"d": "discord:1234567890123"}
    assert paces(loaded.config, keys) == {"discord:1234567890123": (0.4, 4.0)}
    assert describe(destination, False) == "discord webhook"
    assert "s3cr3t" not in repr(destination) and kind(destination).warnings(destination) == []


def test_discord_destinations_naming_one_channel_share_its_pace(tmp_path: Path) -> None:
    hooks = [f"https://discord.com/api/webhooks/{n}/token-{n}" for n in (111111, 222222, 333333)]
    text = BASE + (
        "destinations:\n"
        f"  a: {{type: discord, webhook_url: '{hooks[0]}', channel_id: '9876543210'}}\n"
        f"  b: {{type: discord, webhook_url: '{hooks[1]}', channel_id: 9876543210}}\n"
        f"  c: {{type: discord, webhook_url: '{hooks[2]}'}}\n"
    )
    loaded = config(text, tmp_path)
    keys = pace_keys(loaded.config, dry_run=False)
    # two webhooks of one channel: one pace (Discord counts the channel's messages across its
    # webhooks); a webhook whose channel the config does not name: its own
    assert keys == {
        "a": "discord:channel:9876543210",
        "b": "discord:channel:9876543210",
        "c": "discord:333333",
    }
    assert paces(loaded.config, keys)["discord:channel:9876543210"] == (0.4, 4.0)
    with pytest.raises(ConfigError) as caught:
        config(BASE + f"destinations: {{a: {{type: discord, webhook_url: '{hooks[0]}',"
               " channel_id: general}}\n", tmp_path)  # fmt: skip
    assert caught.value.detailed == [
        "destinations.a.channel_id: 'general' is not a Discord channel id (its digits, e.g."
        " 1234567890123456789)"
    ]


def test_a_thread_id_may_be_written_as_a_number(tmp_path: Path) -> None:
    """(The refusals of `forum` with `thread_id` and of a thread id that is not one are in
    tests/configs/bad/discord-*.yaml.)"""
    number = BASE + "destinations: {d: {type: discord, thread_id: 123456789012, webhook_url: ''}}\n"
    loaded = config(number, tmp_path)
    assert loaded.config.destinations["d"].thread_id == "123456789012"
    assert (
        describe(loaded.config.destinations["d"], False)
        == "discord webhook (thread) (no URL: console)"
    )


def test_without_a_url_a_discord_destination_prints_discords_payload(tmp_path: Path) -> None:
    loaded = config(BASE + "destinations: {d: {type: discord, webhook_url: '${X:-}'}}\n", tmp_path)
    console = io.StringIO()
    (sender,) = senders_for(loaded.config, console).values()
    from relay.messages import Card
    from relay.records import Outgoing

    asyncio.run(sender.send(Outgoing(Card("info", "hello"))))
    line = json.loads(console.getvalue())
    assert line["chat"] == "discord" and line["embeds"][0]["title"] == "\u2139\ufe0f hello"
    assert line["allowed_mentions"] == {"parse": []}


def test_relay_check_warns_about_what_discord_cannot_show(tmp_path: Path) -> None:
    templates = tmp_path / "templates" / "anchor"
    templates.mkdir(parents=True)
    (templates / "task.failed.j2").write_text('{"text": "raw", "blocks": []}')
    text = (
        BASE + "destinations:\n"
        "  d: {type: discord, webhook_url: 'http://proxy.example/hook'}\n"
        "routes: [{match: {source: anchor}, to: [d], mention: ['@here', U0123ABCD]}]\n"
        "templates: ./templates\n"
    )
    report = check(build_runtime(config(text, tmp_path)))
    assert (
        "destinations.d: webhook_url is plain http: its token travels unencrypted"
        in report.warnings
    )
    assert (
        "destinations.d: webhook_url's host is not Discord's: fine for a proxy" in report.warnings
    )
    assert (
        "routes[0].mention[1]: 'U0123ABCD' has no form in discord (destination 'd'): left out"
        " of its messages"
    ) in report.warnings
    assert not any("@here" in w for w in report.warnings)
    assert any(
        "template 'anchor/task.failed' renders Slack Block Kit, which destination 'd' (discord)"
        in e for e in report.errors
    )  # fmt: skip


HOOK = "https://discord.com/api/webhooks/123456/t"


@pytest.mark.parametrize(
    ("settings", "own_thread"),
    [
        (f"forum: true, webhook_url: '{HOOK}'", True),  # each conversation is a forum post
        (f"forum: false, webhook_url: '{HOOK}'", False),  # a text channel: replies are flat
        (f"thread_id: '123456789012', webhook_url: '{HOOK}'", False),  # all in one thread
        (f"forum: true, webhook_url: '{HOOK}?thread_id=98765'", False),  # the URL names one
    ],
)
def test_relay_check_warns_when_a_discord_conversation_gets_no_thread_of_its_own(
    tmp_path: Path, settings: str, own_thread: bool
) -> None:
    text = (
        BASE + "destinations:\n"
        f"  d: {{type: discord, {settings}}}\n"
        "routes: [{match: {source: anchor}, to: [d], thread: auto}]\n"
    )
    report = check(build_runtime(config(text, tmp_path)))
    flat = (
        "routes[0].thread: destination 'd' (discord) cannot reply in a thread: its messages are"
        " posted one after the other"
    )
    assert (flat not in report.warnings) is own_thread, report.warnings
    assert not any("update" in w for w in report.warnings)  # Discord edits in every channel


def test_the_example_configs_discord_destination_works_once_uncommented(tmp_path: Path) -> None:
    text = (ROOT / "config.example.yaml").read_text()
    found = re.search(r"^  # discord:\n(?:  #   .*\n)+", text, re.M)
    assert found is not None, "config.example.yaml shows a Discord destination"
    block = found.group(0)
    uncommented = re.sub(r"^  # ", "  ", block, flags=re.M)
    (tmp_path / "templates").mkdir()
    path = tmp_path / "relay.yaml"
    path.write_text(text.replace(block, uncommented).replace("to: [events]", "to: [discord]"))
    loaded = load_config(path, {"DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/123456/t"})
    destination = loaded.config.destinations["discord"]
    assert describe(destination, False) == "discord webhook"
    assert check(build_runtime(loaded)).errors == []
