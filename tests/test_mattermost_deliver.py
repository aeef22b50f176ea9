"""Mattermost's senders against the fake Mattermost over HTTP: one attempt per send, posts with
their id back (API) or none (webhook), replies by `root_id`, updates by patch, a post that is
gone, every classified failure, Retry-After; and the destination kind: its config's two modes,
pacing keys and descriptions without secrets, `relay check` saying what each mode cannot do."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakemattermost import ALERTS, ARCHIVED, DEFAULT_HOOKS, OUTSIDE, TOKEN, FakeMattermost
from harness import free_port

from relay.assembly import senders_for
from relay.config import MattermostDestination, parse_config
from relay.delivery.destinations import Clients, describe, kind, pace_keys, paces
from relay.delivery.mattermost import MattermostApiSender, MattermostWebhookSender
from relay.messages import Card, Field
from relay.ops.check import check
from relay.records import DeliveryResult, MessageRef, Outcome, Outgoing, Reason
from relay.runtime import build_runtime

HOOK = next(iter(DEFAULT_HOOKS))
CARD = Card("failure", "Task failed", summary="The site said no.", fields=(Field("Task", "t1"),))


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMattermost]:
    with FakeMattermost(hang_seconds=3.0) as server:
        yield server


@pytest.fixture
async def http(fake: FakeMattermost) -> AsyncIterator[httpx.AsyncClient]:
    fake.reset()
    fake.webhooks_enabled = True
    fake.set_rate_limit(None)
    async with httpx.AsyncClient() as client:
        yield client


def api(http: httpx.AsyncClient, fake: FakeMattermost, **kw: Any) -> MattermostApiSender:
    channel = kw.pop("channel", ALERTS)
    return MattermostApiSender(http, fake.url, kw.pop("token", TOKEN), channel, **kw)


def ref(result: DeliveryResult) -> MessageRef:
    assert result.ts is not None
    return MessageRef(result.channel_id, result.ts, None, 1, 0.0, 0.0)


def assert_no_secret(result: DeliveryResult, *secrets: str) -> None:
    shown = json.dumps([result.detail, result.reason, result.channel_id])
    for secret in secrets:
        assert secret not in shown


# ---------------------------------------------------------------- API mode


async def test_a_post_answers_its_id_as_ts(http: httpx.AsyncClient, fake: FakeMattermost) -> None:
    result = await api(http, fake).send(Outgoing(CARD))
    (post,) = fake.posts
    assert result == DeliveryResult(Outcome.SENT, Reason.OK, channel_id=ALERTS, ts=post.id)
    (request,) = fake.requests
    assert (request.method, request.path) == ("POST", "/api/v4/posts")
    assert set(request.body) == {"channel_id", "message", "props"}
    assert request.body["message"] == "❌ **Task failed**"
    assert request.body["props"]["attachments"][0]["fields"][0]["title"] == "Task"
    assert "authorization" not in request.headers  # the fake keeps no token; it was checked


async def test_a_reply_names_the_thread_root_and_an_update_patches_it(
    http: httpx.AsyncClient, fake: FakeMattermost
) -> None:
    sender = api(http, fake)
    parent = ref(await sender.send(Outgoing(CARD)))
    reply = await sender.send(Outgoing(Card("info", "Step two"), reply_to=parent, broadcast=True))
    updated = await sender.send(Outgoing(Card("success", "Task done"), update=parent))

    first, second = fake.posts
    assert second.root_id == first.id and reply.ts == second.id
    assert "broadcast" not in json.dumps(fake.requests[1].body)  # Mattermost has no such thing
    assert updated == DeliveryResult(Outcome.SENT, Reason.OK, channel_id=ALERTS, ts=first.id)
    assert fake.requests[2].path == f"/api/v4/posts/{first.id}/patch"
    assert fake.current(first.id)["message"] == "✅ **Task done**"
    assert fake.current(first.id)["props"]["attachments"] == []  # the old body is gone too


async def test_an_update_of_a_deleted_post_is_not_found(
    http: httpx.AsyncClient, fake: FakeMattermost
) -> None:
    sender = api(http, fake)
    parent = ref(await sender.send(Outgoing(CARD)))
    fake.delete_post(parent.ts)
    result = await sender.send(Outgoing(CARD, update=parent))
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, Reason.NOT_FOUND)
    assert result.detail == "api.context.permissions.app_error"  # patchPost masks "not found"
    # the worker forgets it and posts anew (relay.conversation.moves); a reply cannot be made
    reply = await sender.send(Outgoing(CARD, reply_to=parent))
    assert (reply.reason, reply.detail) == (
        Reason.NOT_FOUND, "api.post.create_post.root_id.app_error"
    )  # fmt: skip


@pytest.mark.parametrize(
    "answer",
    ["error:404:app.post.get.app_error",
     "error:400:api.post.update_post.permissions_details.app_error",
     "error:400:api.post.update_post.permissions_time_limit.app_error"],
)  # fmt: skip
async def test_every_answer_that_a_post_cannot_be_edited_is_not_found(
    http: httpx.AsyncClient, fake: FakeMattermost, answer: str
) -> None:
    sender = api(http, fake)
    parent = ref(await sender.send(Outgoing(CARD)))
    fake.script(ALERTS, [answer])
    result = await sender.send(Outgoing(CARD, update=parent))
    assert (result.reason, result.detail) == (Reason.NOT_FOUND, answer.split(":")[2])


async def test_an_update_of_something_that_is_no_post_id_sends_nothing(
    http: httpx.AsyncClient, fake: FakeMattermost
) -> None:
    odd = MessageRef(ALERTS, "1700000000.000100/../../users", None, 1, 0.0, 0.0)
    result = await api(http, fake).send(Outgoing(CARD, update=odd))
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, Reason.NOT_FOUND)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("setup", "outcome", "reason", "detail"),
    [
        ({"token": "wrong"}, Outcome.PERMANENT, Reason.AUTH,
         "api.context.session_expired.app_error"),
        ({"channel": OUTSIDE}, Outcome.PERMANENT, Reason.CHANNEL,
         "api.context.permissions.app_error"),
        ({"channel": ARCHIVED}, Outcome.PERMANENT, Reason.CHANNEL,
         "api.post.create_post.can_not_post_to_deleted.error"),
        ({"script": "server_error"}, Outcome.RETRY, Reason.SERVER_ERROR, "http_500"),
        ({"script": "http:503"}, Outcome.RETRY, Reason.SERVER_ERROR, "http_503"),
        ({"script": "error:400:model.post.is_valid.msg.app_error"}, Outcome.PERMANENT,
         Reason.INVALID_PAYLOAD, "model.post.is_valid.msg.app_error"),
        ({"script": "error:413:api.context.invalid_body_param.app_error"}, Outcome.PERMANENT,
         Reason.INVALID_PAYLOAD, "api.context.invalid_body_param.app_error"),
        ({"script": "ratelimited:7"}, Outcome.RETRY, Reason.RATE_LIMITED, "http_429"),
        ({"script": "timeout"}, Outcome.RETRY, Reason.TIMEOUT, "ReadTimeout"),
        ({"script": "drop_connection"}, Outcome.RETRY, Reason.CONNECTION, "RemoteProtocolError"),
    ],
)  # fmt: skip
async def test_api_failures_are_classified(
    http: httpx.AsyncClient,
    fake: FakeMattermost,
    setup: dict[str, str],
    outcome: Outcome,
    reason: Reason,
    detail: str,
) -> None:
    if "script" in setup:
        fake.script(ALERTS, [setup.pop("script")])
    sender = api(http, fake, timeout=0.5, **setup)
    result = await sender.send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.detail) == (outcome, reason, detail)
    assert len(fake.requests) == 1  # one attempt, never a retry of its own
    assert fake.posts == []
    assert_no_secret(result, TOKEN, fake.url)


async def test_retry_after_is_honoured_and_else_the_reset(
    http: httpx.AsyncClient, fake: FakeMattermost
) -> None:
    sender = api(http, fake)
    fake.script(ALERTS, ["ratelimited:7", "ratelimited:none"])
    assert (await sender.send(Outgoing(CARD))).retry_after == 7.0
    assert (await sender.send(Outgoing(CARD))).retry_after == 1.0  # X-RateLimit-Reset


async def test_the_servers_rate_limit_is_a_retry_after_its_wait(
    http: httpx.AsyncClient, fake: FakeMattermost
) -> None:
    fake.set_rate_limit((0.5, 1))  # one request now, the next in 2 s
    sender = api(http, fake)
    assert (await sender.send(Outgoing(CARD))).outcome is Outcome.SENT
    limited = await sender.send(Outgoing(CARD))
    assert (limited.outcome, limited.reason, limited.retry_after) == (
        Outcome.RETRY, Reason.RATE_LIMITED, 2.0
    )  # fmt: skip
    answer = fake.requests[-1]
    assert answer.status == 429 and len(fake.posts) == 1


async def test_nothing_listening_is_a_retry() -> None:
    async with httpx.AsyncClient() as client:
        sender = MattermostApiSender(client, f"http://127.0.0.1:{free_port()}", TOKEN, ALERTS)
        result = await sender.send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.RETRY, Reason.CONNECTION, "ConnectError"
    )  # fmt: skip


# ---------------------------------------------------------------- webhook mode


async def test_a_webhook_post_has_no_id_and_overrides_only_what_is_configured(
    http: httpx.AsyncClient, fake: FakeMattermost
) -> None:
    plain = MattermostWebhookSender(http, fake.webhook_url(HOOK))
    named = MattermostWebhookSender(
        http, fake.webhook_url(HOOK), username="relay", icon_url="https://x.example/i.png"
    )
    assert await plain.send(Outgoing(CARD)) == DeliveryResult(Outcome.SENT, Reason.OK)
    await named.send(Outgoing(CARD))
    first, second = fake.requests
    assert set(first.body) == {"text", "attachments"}
    assert (second.body["username"], second.body["icon_url"]) == (
        "relay",
        "https://x.example/i.png",
    )
    assert [p.via for p in fake.posts] == [f"webhook:{HOOK}"] * 2


async def test_a_webhook_degrades_replies_and_updates_to_flat_posts(
    http: httpx.AsyncClient, fake: FakeMattermost
) -> None:
    sender = MattermostWebhookSender(http, fake.webhook_url(HOOK))
    somewhere = MessageRef(ALERTS, "post0000000000000000000001", None, 1, 0.0, 0.0)
    await sender.send(Outgoing(Card("info", "reply"), reply_to=somewhere))
    await sender.send(Outgoing(Card("info", "update"), update=somewhere))
    assert [(p.root_id, p.message.split()[-1]) for p in fake.posts] == [
        ("", "**reply**"), ("", "**update**")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("script", "reason", "detail"),
    [
        (None, Reason.AUTH, "web.incoming_webhook.invalid.app_error"),  # a deleted hook
        ("error:501:web.incoming_webhook.disabled.app_error", Reason.AUTH,
         "web.incoming_webhook.disabled.app_error"),
        ("error:403:web.incoming_webhook.permissions.app_error", Reason.AUTH,
         "web.incoming_webhook.permissions.app_error"),
        ("error:404:app.channel.get.existing.app_error", Reason.CHANNEL,
         "app.channel.get.existing.app_error"),
        ("error:400:web.incoming_webhook.text.app_error", Reason.INVALID_PAYLOAD,
         "web.incoming_webhook.text.app_error"),
        ("http:404", Reason.AUTH, "http_404"),  # no Mattermost answer: the URL is wrong
        ("http:401", Reason.AUTH, "http_401"),
        ("http:403", Reason.AUTH, "http_403"),
    ],
)  # fmt: skip
async def test_webhook_failures_are_permanent_and_named_by_their_id(
    http: httpx.AsyncClient, fake: FakeMattermost, script: str | None, reason: Reason, detail: str
) -> None:
    key = "gonehook000000000000000000"
    if script is None:
        fake.delete_hook(key)
    else:
        fake.script(key, [script])
    url = fake.webhook_url(key)
    result = await MattermostWebhookSender(http, url).send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.detail) == (Outcome.PERMANENT, reason, detail)
    assert_no_secret(result, url, key)


async def test_webhooks_disabled_on_the_server_are_permanent(
    http: httpx.AsyncClient, fake: FakeMattermost
) -> None:
    fake.webhooks_enabled = False
    result = await MattermostWebhookSender(http, fake.webhook_url(HOOK)).send(Outgoing(CARD))
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, Reason.AUTH)


@pytest.mark.parametrize(
    ("script", "reason", "after"),
    [("ratelimited:3", Reason.RATE_LIMITED, 3.0), ("server_error", Reason.SERVER_ERROR, None),
     ("error:500:api.post.create_webhook_post.creating.app_error", Reason.SERVER_ERROR, None)],
)  # fmt: skip
async def test_webhook_transient_failures_are_retried(
    http: httpx.AsyncClient, fake: FakeMattermost, script: str, reason: Reason, after: float | None
) -> None:
    fake.script(HOOK, [script])
    result = await MattermostWebhookSender(http, fake.webhook_url(HOOK)).send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.retry_after) == (Outcome.RETRY, reason, after)


# ---------------------------------------------------------------- the destination kind

CONFIG = """
sources: {anchor: {provider: anchor, secrets: [s]}}
destinations:
  hook: {type: mattermost, webhook_url: "%(hook)s"}
  bot: {type: mattermost, url: "%(url)s", token: "%(token)s", channel_id: %(channel)s}
  quiet: {type: mattermost, webhook_url: "${UNSET_HOOK:-}"}
  dry: {type: mattermost, url: "https://mm.example.com", token: "", channel_id: %(channel)s}
routes:
  - {match: {type: "task.*"}, to: [hook, bot], thread: auto, mention: ["@here", U0123ABCD]}
  - {match: {type: "session.*"}, to: [hook, bot], repeat: {key: [data.session_id]}}
default: {to: [quiet, dry]}
"""


def config_text(fake: FakeMattermost, url: str | None = None) -> str:
    return CONFIG % {
        "hook": fake.webhook_url(HOOK),
        "url": url or fake.url,
        "token": TOKEN,
        "channel": ALERTS,
    }


def test_relay_check_says_what_each_mode_cannot_do(fake: FakeMattermost, tmp_path: Path) -> None:
    runtime = build_runtime(parse_config(config_text(fake), tmp_path / "relay.yaml", {}))
    report = check(runtime)
    assert report.errors == []
    url = "url uses plain http: the bot token and every message travel unencrypted"
    hook = "webhook_url uses plain http: the hook's key and every message travel unencrypted"
    assert report.warnings == [
        f"destinations.hook: {hook}",
        f"destinations.bot: {url}",
        "routes[0].thread: destination 'hook' (mattermost) cannot reply in a thread: its messages"
        " are posted one after the other",
        "routes[0].thread: destination 'hook' (mattermost) cannot update a message in place:"
        " each change of state is posted anew",
        "routes[0].mention[1]: 'U0123ABCD' has no form in mattermost (destination 'hook'):"
        " left out of its messages",
        "routes[0].mention[1]: 'U0123ABCD' has no form in mattermost (destination 'bot'):"
        " left out of its messages",
        "routes[1].repeat: destination 'hook' (mattermost) cannot update a message in place:"
        " each repeat is posted",
    ]


def test_relay_check_refuses_block_kit_for_mattermost(fake: FakeMattermost, tmp_path: Path) -> None:
    (tmp_path / "templates" / "anchor").mkdir(parents=True)
    block_kit = (
        '{"text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]}'
    )
    (tmp_path / "templates" / "anchor" / "task.failed.j2").write_text(block_kit)
    text = config_text(fake) + "templates: ./templates\n"
    runtime = build_runtime(parse_config(text, tmp_path / "relay.yaml", {}))
    errors = check(runtime).errors
    assert any(
        "template 'anchor/task.failed' renders Slack Block Kit, which destination 'hook'"
        " (mattermost) cannot show" in e
        for e in errors
    ), errors


def test_a_server_on_https_is_not_worth_a_warning(fake: FakeMattermost, tmp_path: Path) -> None:
    text = config_text(fake, url="https://chat.internal.example:8065")
    text = text.replace(fake.webhook_url(HOOK), f"https://chat.internal.example/hooks/{HOOK}")
    runtime = build_runtime(parse_config(text, tmp_path / "relay.yaml", {}))
    assert [w for w in check(runtime).warnings if w.startswith("destinations.")] == []


def test_keys_and_descriptions_never_carry_a_secret(fake: FakeMattermost, tmp_path: Path) -> None:
    config = parse_config(config_text(fake), tmp_path / "relay.yaml", {}).config
    keys = pace_keys(config, dry_run=False)
    host = fake.url.split("://")[1]
    assert keys["bot"] == f"mattermost:{host}/{ALERTS}"
    assert keys["hook"].startswith("mattermost:") and len(keys["hook"]) == len("mattermost:") + 16
    assert keys["quiet"] == keys["dry"] == "console"
    shown = {n: describe(d, dry_run=False) for n, d in config.destinations.items()}
    assert shown == {
        "hook": "mattermost incoming webhook",
        "bot": f"mattermost {fake.url} channel {ALERTS}",
        "quiet": "mattermost incoming webhook (no URL: console)",
        "dry": f"mattermost https://mm.example.com channel {ALERTS} (no token: console)",
    }
    assert HOOK not in json.dumps([keys, shown]) and TOKEN not in json.dumps([keys, shown])
    assert paces(config, keys)[keys["bot"]] == (2.0, 10.0)  # Mattermost's own default


def test_each_mode_says_whether_it_threads_and_updates(
    fake: FakeMattermost, tmp_path: Path
) -> None:
    config = parse_config(config_text(fake), tmp_path / "relay.yaml", {}).config
    found = {
        n: (kind(d).can_thread(d), kind(d).can_update(d)) for n, d in config.destinations.items()
    }
    assert found == {
        "hook": (False, False), "bot": (True, True), "quiet": (False, False), "dry": (True, True)
    }  # fmt: skip


async def test_without_a_url_or_token_it_prints_what_mattermost_would_get(
    fake: FakeMattermost, tmp_path: Path
) -> None:
    runtime = build_runtime(parse_config(config_text(fake), tmp_path / "relay.yaml", {}))
    console = io.StringIO()
    senders = senders_for(runtime.config, console, httpx.AsyncClient())
    assert isinstance(senders["hook"], MattermostWebhookSender)
    assert isinstance(senders["bot"], MattermostApiSender)
    await senders["quiet"].send(Outgoing(CARD))
    result = await senders["dry"].send(Outgoing(CARD))
    quiet, dry = (json.loads(line) for line in console.getvalue().splitlines())
    assert quiet["chat"] == dry["chat"] == "mattermost"
    assert quiet["text"] == "❌ **Task failed**" and quiet["attachments"][0]["fields"]
    assert dry["channel"] == ALERTS and result.ts is not None  # dry-run threads still line up


def test_a_destination_without_the_http_client_is_refused_clearly(tmp_path: Path) -> None:
    destination = MattermostDestination(
        type="mattermost", webhook_url="https://mm.example.com/hooks/abc"
    )
    with pytest.raises(ValueError, match="needs the HTTP client"):
        kind(destination).sender("hook", destination, Clients(None, io.StringIO(), 10.0))
