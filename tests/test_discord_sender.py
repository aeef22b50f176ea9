"""The Discord sender against the fake Discord over HTTP: one attempt per message, every answer
classified, Discord's retry signals honoured, forum posts and their replies, edits in place,
and what a text channel does instead of a thread."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fakediscord import FakeDiscord

from relay.assembly import child_deliveries
from relay.config import load_config, parse_config
from relay.delivery.destinations import Clients, build_senders
from relay.delivery.discord import DiscordWebhookSender, webhook_id
from relay.delivery.policy import RetryPolicy, settlement
from relay.delivery.worker import Worker
from relay.messages import Card, Field
from relay.records import (
    DeliveryResult,
    MessageRef,
    OutboxRow,
    Outcome,
    Outgoing,
    Reason,
    Status,
)
from relay.server import build_services

CARD = Card("failure", "Task failed", summary="boom", fields=(Field("Task", "`t1`"),),
            mentions=("discord:role:123456789",))  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[FakeDiscord]:
    with FakeDiscord(rate_limits=False, hang_seconds=5) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeDiscord) -> FakeDiscord:
    server.reset()
    return server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def ref(result: DeliveryResult) -> MessageRef:
    assert result.ts is not None
    return MessageRef(result.channel_id, result.ts, None, 1, 0.0, 0.0)


async def test_a_post_answers_the_message_id_and_channel(
    fake: FakeDiscord, client: httpx.AsyncClient
) -> None:
    result = await DiscordWebhookSender(client, fake.url("alerts")).send(Outgoing(CARD))
    (message,) = fake.messages
    assert result == DeliveryResult(
        Outcome.SENT, Reason.OK, channel_id=fake.hooks["alerts"].channel, ts=message.id
    )
    (request,) = fake.requests
    assert request.query == {"wait": "true", "with_components": "true"}
    assert request.body is not None
    assert request.body["allowed_mentions"] == {"parse": [], "roles": ["123456789"]}
    assert message.content == "<@&123456789>"


async def test_an_update_edits_the_message_in_place_with_allowed_mentions(
    fake: FakeDiscord, client: httpx.AsyncClient
) -> None:
    sender = DiscordWebhookSender(client, fake.url("alerts"))
    first = await sender.send(Outgoing(CARD))
    done = Card("success", "Task completed")
    second = await sender.send(Outgoing(done, update=ref(first)))
    assert second.outcome is Outcome.SENT and second.ts == first.ts
    now = fake.current(first.ts or "")
    assert now["embeds"][0]["title"] == "✅ Task completed"
    assert now["content"] == ""  # the mention of the first state is gone with it
    assert now["components"] == []
    assert [r.method for r in fake.requests] == ["POST", "PATCH"]
    assert all(r.allowed_mentions_sent for r in fake.requests)
    assert "wait" not in fake.requests[1].query


async def test_a_deleted_message_is_not_found_so_the_worker_posts_anew(
    fake: FakeDiscord, client: httpx.AsyncClient
) -> None:
    sender = DiscordWebhookSender(client, fake.url("alerts"))
    first = await sender.send(Outgoing(CARD))
    fake.delete_message(first.ts or "")
    result = await sender.send(Outgoing(CARD, update=ref(first)))
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.PERMANENT, Reason.NOT_FOUND, "10008",
    )  # fmt: skip
    printed = MessageRef(None, "0000000000.000001", None, 1, 0.0, 0.0)  # a dry-run's ts
    result = await sender.send(Outgoing(CARD, update=printed))
    assert result.reason is Reason.NOT_FOUND
    assert len(fake.requests) == 2  # the post and the first edit: the last was never asked


async def test_a_forum_starts_a_post_per_conversation_and_replies_into_it(
    fake: FakeDiscord, client: httpx.AsyncClient
) -> None:
    sender = DiscordWebhookSender(client, fake.url("forum"), forum=True)
    parent = await sender.send(Outgoing(CARD, thread="anchor:ses_1"))
    assert parent.channel_id == parent.ts  # a forum post's thread has its first message's id
    reply = await sender.send(Outgoing(Card("info", "Recording ready"), reply_to=ref(parent),
                                       broadcast=True))  # fmt: skip
    edited = await sender.send(Outgoing(Card("success", "Solved"), update=ref(reply)))
    assert edited.outcome is Outcome.SENT
    started, replied = fake.messages
    assert started.started_thread and started.thread_name == "Task failed"
    assert replied.thread_id == parent.ts and not replied.started_thread
    assert reply.channel_id == parent.ts
    assert fake.requests[2].query["thread_id"] == parent.ts
    assert fake.current(reply.ts or "")["embeds"][0]["title"] == "✅ Solved"


async def test_a_forum_webhook_configured_as_a_text_channel_is_refused_for_good(
    fake: FakeDiscord, client: httpx.AsyncClient
) -> None:
    result = await DiscordWebhookSender(client, fake.url("forum")).send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.PERMANENT, Reason.CHANNEL, "220001",
    )  # fmt: skip


async def test_in_a_text_channel_a_reply_is_posted_flat(
    fake: FakeDiscord, client: httpx.AsyncClient
) -> None:
    sender = DiscordWebhookSender(client, fake.url("alerts"))
    parent = await sender.send(Outgoing(CARD, thread="k"))
    reply = await sender.send(Outgoing(CARD, reply_to=ref(parent), broadcast=True))
    assert reply.outcome is Outcome.SENT
    assert [m.thread_id for m in fake.messages] == [None, None]
    assert all("thread_id" not in r.query and "thread_name" not in (r.body or {})
               for r in fake.requests)  # fmt: skip


async def test_a_configured_thread_takes_every_message_and_its_edits(
    fake: FakeDiscord, client: httpx.AsyncClient
) -> None:
    thread = fake.add_thread("alerts")
    for sender in (
        DiscordWebhookSender(client, fake.url("alerts"), thread_id=thread),
        DiscordWebhookSender(client, f"{fake.url('alerts')}?thread_id={thread}&wait=false"),
    ):
        posted = await sender.send(Outgoing(CARD))
        assert posted.channel_id == thread
        edited = await sender.send(Outgoing(CARD, update=ref(posted)))
        assert edited.outcome is Outcome.SENT
    assert [m.thread_id for m in fake.messages] == [thread, thread]
    assert all(r.query.get("wait") in (None, "true") for r in fake.requests)


@pytest.mark.parametrize(
    ("step", "outcome", "reason", "detail"),
    [
        ("server_error", Outcome.RETRY, Reason.SERVER_ERROR, "http_500"),
        ("http:502", Outcome.RETRY, Reason.SERVER_ERROR, "http_502"),
        ("missing_permissions", Outcome.PERMANENT, Reason.AUTH, "50013"),
        ("unknown_message", Outcome.PERMANENT, Reason.NOT_FOUND, "10008"),
        ("timeout", Outcome.RETRY, Reason.TIMEOUT, "ReadTimeout"),
        ("drop_connection", Outcome.RETRY, Reason.CONNECTION, "RemoteProtocolError"),
    ],
)
async def test_every_failure_is_classified(
    fake: FakeDiscord,
    client: httpx.AsyncClient,
    step: str,
    outcome: Outcome,
    reason: Reason,
    detail: str,
) -> None:
    fake.script("alerts", [step])
    sender = DiscordWebhookSender(client, fake.url("alerts"), timeout=1.0)
    result = await sender.send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.detail) == (outcome, reason, detail)
    assert "tok-alerts" not in repr(result)
    assert (await sender.send(Outgoing(CARD))).outcome is Outcome.SENT  # one attempt each


async def test_an_invalid_payload_is_permanent(
    fake: FakeDiscord, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import relay.delivery.discord as module

    monkeypatch.setattr(module, "payload", lambda _m: {"content": "x" * 2001})
    result = await DiscordWebhookSender(client, fake.url("alerts")).send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.PERMANENT, Reason.INVALID_PAYLOAD, "50035",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("step", "reason", "detail"),
    [("unknown_webhook", Reason.CHANNEL, "10015"), ("invalid_token", Reason.AUTH, "50027")],
)
async def test_a_webhook_that_is_gone_is_never_used_again(
    fake: FakeDiscord, client: httpx.AsyncClient, step: str, reason: Reason, detail: str
) -> None:
    fake.script("alerts", [step])
    sender = DiscordWebhookSender(client, fake.url("alerts"))
    for _ in range(3):
        result = await sender.send(Outgoing(CARD))
        assert (result.outcome, result.reason, result.detail) == (Outcome.PERMANENT, reason, detail)
    assert len(fake.requests) == 1  # Discord asks that a gone webhook not be called again
    fresh = DiscordWebhookSender(client, fake.url("alerts"))  # a reload builds it anew
    assert (await fresh.send(Outgoing(CARD))).outcome is Outcome.SENT


async def test_a_wrong_token_from_the_real_fake_is_gone_too(
    fake: FakeDiscord, client: httpx.AsyncClient
) -> None:
    sender = DiscordWebhookSender(client, fake.url("alerts")[:-2] + "zz")
    result = await sender.send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.PERMANENT, Reason.AUTH, "50027",
    )  # fmt: skip


def row(attempts: int = 1) -> OutboxRow:
    return OutboxRow(
        1, "s", "e", "t", "d", "discord:1", "x", CARD, Status.INFLIGHT, attempts, 0.0, 0.0,
        None, None,
    )  # fmt: skip


async def test_a_429_is_retried_no_sooner_than_discords_float_retry_after(
    fake: FakeDiscord, client: httpx.AsyncClient
) -> None:
    fake.script("alerts", ["ratelimited:2.5", "ratelimited_global:0.75"])
    sender = DiscordWebhookSender(client, fake.url("alerts"), clock=lambda: 100.0)
    result = await sender.send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.retry_after, result.detail) == (
        Outcome.RETRY, Reason.RATE_LIMITED, 2.5, "http_429:user",
    )  # fmt: skip
    decided = settlement(row(), result, (), 10.0, RetryPolicy(), lambda: 0.0)
    assert decided.pause == 2.5  # the webhook's key waits
    assert decided.next_attempt_at is not None and decided.next_attempt_at >= 12.5
    # the bucket is known empty: no request until it resets
    again = await sender.send(Outgoing(CARD))
    assert again.detail == "bucket_exhausted" and again.retry_after == 2.5
    assert len(fake.requests) == 1
    later = DiscordWebhookSender(client, fake.url("alerts"))
    global_limit = await later.send(Outgoing(CARD))
    assert (global_limit.retry_after, global_limit.detail) == (0.75, "http_429:global")


async def test_a_global_429_holds_every_discord_webhook_of_the_config(
    fake: FakeDiscord, client: httpx.AsyncClient
) -> None:
    """Discord's global limit is the whole relay's: once one webhook is told so, the others
    wait too, without a request (each would be refused and count toward the IP ban)."""
    loaded = parse_config(
        "sources: {anchor: {provider: anchor, secrets: [s]}}\n"
        "destinations:\n"
        f"  alerts: {{type: discord, webhook_url: '{fake.url('alerts')}'}}\n"
        f"  events: {{type: discord, webhook_url: '{fake.url('events')}'}}\n"
        "default: {to: [alerts]}\n",
        Path("relay.yaml"),
        {},
    )
    senders = build_senders(loaded.config, Clients(None, io.StringIO(), 10.0, client))
    fake.script("alerts", ["ratelimited_global:1.5"])
    limited = await senders["alerts"].send(Outgoing(CARD))
    assert (limited.outcome, limited.retry_after, limited.detail) == (
        Outcome.RETRY, 1.5, "http_429:global",
    )  # fmt: skip
    held = await senders["events"].send(Outgoing(CARD))
    assert (held.outcome, held.reason, held.detail) == (
        Outcome.RETRY, Reason.RATE_LIMITED, "global_rate_limit",
    )  # fmt: skip
    assert held.retry_after is not None and 0 < held.retry_after <= 1.5
    assert len(fake.requests) == 1  # the other webhook was not asked
    await asyncio.sleep(1.6)
    assert (await senders["events"].send(Outgoing(CARD))).outcome is Outcome.SENT
    assert (await senders["alerts"].send(Outgoing(CARD))).outcome is Outcome.SENT
    # another relay (senders of other clients) has a hold of its own
    again = build_senders(loaded.config, Clients(None, io.StringIO(), 10.0, client))
    fake.script("alerts", ["ratelimited_global:30"])
    await senders["alerts"].send(Outgoing(CARD))
    assert (await again["events"].send(Outgoing(CARD))).outcome is Outcome.SENT


def two_webhooks(fake: FakeDiscord) -> str:
    return (
        "sources: {anchor: {provider: anchor, secrets: [s]}}\n"
        "destinations:\n"
        f"  alerts: {{type: discord, webhook_url: '{fake.url('alerts')}'}}\n"
        f"  events: {{type: discord, webhook_url: '{fake.url('events')}'}}\n"
        "default: {to: [alerts]}\n"
    )


async def test_a_reload_during_a_global_hold_keeps_it(fake: FakeDiscord, tmp_path: Path) -> None:
    """A reload builds every sender anew: those of a running relay, with or without its
    delivery process, keep Discord's global hold (a request would be refused and count toward
    the IP ban); a relay started afresh does not inherit one."""
    config = tmp_path / "relay.yaml"
    config.write_text(two_webhooks(fake))
    env = {"RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db"}
    services = build_services(load_config(config, env={}), env, tmp_path, io.StringIO())
    deliveries = child_deliveries(load_config(config, env={}), env, tmp_path)
    fresh = build_services(load_config(config, env={}), env, tmp_path, io.StringIO())
    await services.store.open()  # a reload reads it
    try:
        for worker, reload in (
            (services.worker, services.reload),
            (deliveries.worker, lambda: deliveries.reload(load_config(config, env={}))),
        ):
            assert isinstance(worker, Worker)
            fake.script("alerts", ["ratelimited_global:30"])
            limited = await worker._senders["alerts"].send(Outgoing(CARD))
            assert limited.detail == "http_429:global"
            before = len(fake.requests)
            await _awaited(reload())
            reloaded = worker._senders["events"]
            assert reloaded is not None
            held = await reloaded.send(Outgoing(CARD))
            assert (held.outcome, held.detail) == (Outcome.RETRY, "global_rate_limit")
            assert len(fake.requests) == before  # not asked
        assert isinstance(fresh.worker, Worker)
        sent = await fresh.worker._senders["events"].send(Outgoing(CARD))
        assert sent.outcome is Outcome.SENT
    finally:
        for built in (services, fresh):
            assert built.http is not None
            await built.http.aclose()
        await services.store.close()
        await deliveries.close()


async def test_with_the_delivery_process_the_server_builds_no_senders(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    """The delivery process builds its own senders from each config it is sent: the server's
    reload builds none (they would go unused)."""
    config = tmp_path / "relay.yaml"
    config.write_text(two_webhooks(fake))
    env = {"RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db", "RELAY_DELIVERY_PROCESS": "on"}
    services = build_services(load_config(config, env={}), env, tmp_path, io.StringIO())
    try:
        assert services.rebuild is not None
        runtime, senders = services.rebuild(load_config(config, env={}))
        assert senders == {} and set(runtime.config.destinations) == {"alerts", "events"}
    finally:
        assert services.http is not None
        await services.http.aclose()


async def _awaited(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value


async def test_an_exhausted_bucket_is_not_called_until_it_resets(
    client: httpx.AsyncClient,
) -> None:
    now = [1000.0]
    # Discord's 5 requests per webhook, over a window wide enough for a loaded machine
    with FakeDiscord(webhook_limit=(5, 30.0)) as fake:
        sender = DiscordWebhookSender(client, fake.url("alerts"), clock=lambda: now[0])
        results = [await sender.send(Outgoing(CARD)) for _ in range(7)]
        assert [r.outcome for r in results] == [Outcome.SENT] * 5 + [Outcome.RETRY] * 2
        assert {r.detail for r in results[5:]} == {"bucket_exhausted"}
        assert all(0 < (r.retry_after or 0) <= 30 for r in results[5:])
        assert len(fake.requests) == 5  # no 429 asked for
        now[0] += 30.0  # the sender's clock: the bucket has reset
        await sender.send(Outgoing(CARD))
        assert len(fake.requests) == 6  # asked again


async def test_a_204_from_something_that_ignores_wait_is_sent_without_an_id(
    client: httpx.AsyncClient,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as proxy:
        sender = DiscordWebhookSender(proxy, "https://proxy.example/api/webhooks/12345678/tok")
        result = await sender.send(Outgoing(CARD))
    assert result == DeliveryResult(Outcome.SENT, Reason.OK)


def test_the_webhook_id_comes_from_the_path() -> None:
    assert webhook_id("https://discord.com/api/webhooks/1234567890/tok-en") == "1234567890"
    assert webhook_id("https://discord.com/api/v10/webhooks/1234567890/t?wait=true") == "1234567890"
    assert webhook_id("https://proxy.example/hook") is None
