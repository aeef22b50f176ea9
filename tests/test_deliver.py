"""relay.deliver against the fake Slack over real HTTP, with real slack-sdk clients: what each
Slack answer becomes (sent / retry(after) / permanent(reason)), what is sent, and that no
result ever carries a token or a webhook URL."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fakeslack import VALID_TOKEN, FakeSlack
from slack_sdk.web.async_client import AsyncWebClient

from relay.config import WebhookDestination
from relay.delivery.console import ConsoleSender
from relay.delivery.destinations import kind
from relay.delivery.slack import (
    SlackChannelSender,
    SlackWebhookSender,
    classify_slack_error,
    web_client,
    webhook_client,
)
from relay.messages import Blocks
from relay.records import DeliveryResult, MessageRef, Outcome, Outgoing, Reason

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Task failed*"}}]


def out(
    text: str,
    blocks: list[dict[str, Any]] | None = None,
    *,
    thread_ts: str | None = None,
    reply_broadcast: bool = False,
    update_ts: str | None = None,
    channel_id: str | None = None,
) -> Outgoing:
    """A message to send, replying under or updating the message of a `ts` when given."""

    def ref(ts: str | None) -> MessageRef | None:
        return None if ts is None else MessageRef(channel_id, ts, None, 1, 0.0, 0.0)

    return Outgoing(
        Blocks(text, tuple(blocks or ())),
        reply_to=ref(thread_ts),
        broadcast=reply_broadcast,
        update=ref(update_ts),
    )


MESSAGE = out("Task failed", BLOCKS)
CLIENT_TIMEOUT = 1  # seconds; the fake's "timeout" step hangs far longer


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


def channel_sender(
    fake: FakeSlack, channel: str = "#browser-alerts", token: str = VALID_TOKEN
) -> SlackChannelSender:
    client = web_client(token, base_url=fake.api_url, timeout=CLIENT_TIMEOUT)
    return SlackChannelSender(client, channel)


def hook_sender(url: str) -> SlackWebhookSender:
    return SlackWebhookSender(webhook_client(url, timeout=CLIENT_TIMEOUT))


def assert_no_secret(result: DeliveryResult, *secrets: str) -> None:
    for secret in (VALID_TOKEN, *secrets):
        assert secret not in repr(result)


# ------------------------------------------------------------------ Web API: success


async def test_post_returns_channel_id_and_ts_and_disables_unfurls(fake: FakeSlack) -> None:
    result = await channel_sender(fake).send(MESSAGE)

    [message] = fake.messages
    assert result == DeliveryResult(Outcome.SENT, Reason.OK, channel_id="C0ALERTS01", ts=message.ts)
    assert (message.text, message.blocks) == ("Task failed", BLOCKS)
    assert message.body["unfurl_links"] is False
    assert message.body["unfurl_media"] is False
    assert "link_names" not in message.body
    assert "parse" not in message.body


async def test_thread_ts_is_sent_as_the_exact_string(fake: FakeSlack) -> None:
    sender = channel_sender(fake)
    parent = await sender.send(MESSAGE)
    assert parent.ts is not None

    reply = await sender.send(out("again", blocks=[], thread_ts=parent.ts, reply_broadcast=True))

    assert reply.outcome is Outcome.SENT
    last = fake.messages[-1]
    assert last.body["thread_ts"] == parent.ts
    assert last.thread_ts == parent.ts
    assert last.reply_broadcast is True
    assert "blocks" not in last.body  # no empty blocks list is sent


async def test_one_attempt_per_send_and_no_sleep(fake: FakeSlack) -> None:
    fake.script("#browser-alerts", ["ratelimited:30"])
    started = time.monotonic()

    result = await channel_sender(fake).send(MESSAGE)

    assert (result.outcome, result.retry_after) == (Outcome.RETRY, 30.0)
    assert time.monotonic() - started < 5
    assert len(fake.requests) == 1


# ------------------------------------------------------------------ Web API: scripted failures


@pytest.mark.parametrize(
    ("step", "outcome", "reason", "retry_after", "detail"),
    [
        ("ratelimited:7", Outcome.RETRY, Reason.RATE_LIMITED, 7.0, "ratelimited"),
        ("ratelimited:none", Outcome.RETRY, Reason.RATE_LIMITED, 1.0, "ratelimited"),
        ("server_error", Outcome.RETRY, Reason.SERVER_ERROR, None, "http_500"),
        ("http:502", Outcome.RETRY, Reason.SERVER_ERROR, None, "http_502"),
        ("internal_error", Outcome.RETRY, Reason.SERVER_ERROR, None, "internal_error"),
        ("fatal_error", Outcome.RETRY, Reason.SERVER_ERROR, None, "fatal_error"),
        ("service_unavailable", Outcome.RETRY, Reason.SERVER_ERROR, None, "service_unavailable"),
        ("timeout", Outcome.RETRY, Reason.TIMEOUT, None, None),
        ("drop_connection", Outcome.RETRY, Reason.CONNECTION, None, None),
        ("invalid_auth", Outcome.PERMANENT, Reason.AUTH, None, "invalid_auth"),
        ("not_authed", Outcome.PERMANENT, Reason.AUTH, None, "not_authed"),
        ("token_revoked", Outcome.PERMANENT, Reason.AUTH, None, "token_revoked"),
        ("missing_scope", Outcome.PERMANENT, Reason.AUTH, None, "missing_scope"),
        ("account_inactive", Outcome.PERMANENT, Reason.AUTH, None, "account_inactive"),
        ("channel_not_found", Outcome.PERMANENT, Reason.CHANNEL, None, "channel_not_found"),
        ("not_in_channel", Outcome.PERMANENT, Reason.CHANNEL, None, "not_in_channel"),
        ("is_archived", Outcome.PERMANENT, Reason.CHANNEL, None, "is_archived"),
        ("invalid_blocks", Outcome.PERMANENT, Reason.INVALID_PAYLOAD, None, "invalid_blocks"),
        ("msg_too_long", Outcome.PERMANENT, Reason.INVALID_PAYLOAD, None, "msg_too_long"),
        (
            "msg_blocks_too_long",
            Outcome.PERMANENT,
            Reason.INVALID_PAYLOAD,
            None,
            "msg_blocks_too_long",
        ),
        ("no_text", Outcome.PERMANENT, Reason.INVALID_PAYLOAD, None, "no_text"),
        ("brand_new_error", Outcome.PERMANENT, Reason.UNKNOWN, None, "brand_new_error"),
    ],
)
async def test_post_failures_are_classified(
    fake: FakeSlack,
    step: str,
    outcome: Outcome,
    reason: Reason,
    retry_after: float | None,
    detail: str | None,
) -> None:
    fake.script("#browser-alerts", [step])
    sender = channel_sender(fake)

    result = await sender.send(MESSAGE)
    after = await sender.send(MESSAGE)

    assert (result.outcome, result.reason, result.retry_after) == (outcome, reason, retry_after)
    assert (result.channel_id, result.ts) == (None, None)
    if detail is not None:
        assert result.detail == detail
    else:  # transport failures name the exception class, never its message (it has the URL)
        assert result.detail is not None
        assert result.detail.isidentifier()
    assert_no_secret(result, fake.api_url)
    assert after.outcome is Outcome.SENT  # the fake behaves normally again


# ------------------------------------------------------------------ Web API: real failures


async def test_wrong_token_is_permanent_auth_without_the_token(fake: FakeSlack) -> None:
    result = await channel_sender(fake, token="xoxb-not-the-right-one").send(MESSAGE)
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.PERMANENT,
        Reason.AUTH,
        "invalid_auth",
    )
    assert_no_secret(result, "xoxb-not-the-right-one")


@pytest.mark.parametrize(
    ("channel", "detail"),
    [("#no-such-channel", "channel_not_found"), ("#old-alerts", "is_archived")],
)
async def test_unusable_channels_are_permanent(fake: FakeSlack, channel: str, detail: str) -> None:
    result = await channel_sender(fake, channel).send(MESSAGE)
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.PERMANENT,
        Reason.CHANNEL,
        detail,
    )


async def test_blocks_over_slack_limits_are_permanent_invalid_payload(fake: FakeSlack) -> None:
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    result = await channel_sender(fake).send(out("t", blocks=[header]))
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.PERMANENT,
        Reason.INVALID_PAYLOAD,
        "invalid_blocks",
    )


async def test_slack_rate_limit_gives_retry_after(fake: FakeSlack) -> None:
    fake.set_rate_limit(1)
    sender = channel_sender(fake)
    first, second = await sender.send(MESSAGE), await sender.send(MESSAGE)
    assert first.outcome is Outcome.SENT
    assert (second.outcome, second.reason, second.retry_after) == (
        Outcome.RETRY,
        Reason.RATE_LIMITED,
        1.0,
    )


async def test_nothing_listening_is_retry_connection() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/"
    client = web_client(VALID_TOKEN, base_url=url, timeout=CLIENT_TIMEOUT)
    result = await SlackChannelSender(client, "#browser-alerts").send(MESSAGE)
    assert (result.outcome, result.reason) == (Outcome.RETRY, Reason.CONNECTION)
    assert_no_secret(result, url, str(port))


# ------------------------------------------------------------------ chat.update


async def test_update_uses_the_channel_id_of_the_first_post(fake: FakeSlack) -> None:
    first = await channel_sender(fake).send(MESSAGE)
    # A fresh sender (e.g. after a restart) only knows the channel name and the stored result.
    update = out("Resolved", [], update_ts=first.ts, channel_id=first.channel_id)

    result = await channel_sender(fake).send(update)

    assert result == DeliveryResult(Outcome.SENT, Reason.OK, channel_id="C0ALERTS01", ts=first.ts)
    assert first.ts is not None
    current = fake.current("C0ALERTS01", first.ts)
    assert current["text"] == "Resolved"
    assert "blocks" not in current  # an empty blocks list replaces the old blocks
    assert len(fake.messages) == 1


async def test_update_without_channel_id_uses_the_id_learned_from_posting(fake: FakeSlack) -> None:
    sender = channel_sender(fake)
    first = await sender.send(MESSAGE)
    result = await sender.send(out("v2", blocks=BLOCKS, update_ts=first.ts))
    assert result.outcome is Outcome.SENT
    assert [u.text for u in fake.updates] == ["v2"]


async def test_update_by_channel_name_alone_is_channel_not_found(fake: FakeSlack) -> None:
    first = await channel_sender(fake).send(MESSAGE)
    result = await channel_sender(fake).send(out("v2", update_ts=first.ts))
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.PERMANENT,
        Reason.CHANNEL,
        "channel_not_found",
    )


@pytest.mark.parametrize("case", ["message_not_found", "cant_update_message", "edit_window_closed"])
async def test_update_of_a_message_that_is_gone_is_not_found(fake: FakeSlack, case: str) -> None:
    ts = {
        "message_not_found": "1690000000.000100",
        "cant_update_message": fake.add_foreign_message("browser-alerts", "not ours"),
        "edit_window_closed": (await channel_sender(fake).send(MESSAGE)).ts,
    }[case]
    if case == "edit_window_closed":
        fake.script("C0ALERTS01", ["edit_window_closed"])
    msg = out("v2", update_ts=ts, channel_id="C0ALERTS01")

    result = await channel_sender(fake).send(msg)

    assert (result.outcome, result.reason, result.detail) == (
        Outcome.PERMANENT,
        Reason.NOT_FOUND,
        case,
    )


# ------------------------------------------------------------------ incoming webhooks


async def test_webhook_success(fake: FakeSlack) -> None:
    result = await hook_sender(fake.webhook_url("alerts-hook")).send(MESSAGE)

    assert result == DeliveryResult(Outcome.SENT, Reason.OK)
    [message] = fake.messages
    assert (message.channel, message.text, message.blocks) == ("C0ALERTS01", "Task failed", BLOCKS)
    assert message.body["unfurl_links"] is False
    assert message.body["unfurl_media"] is False


@pytest.mark.parametrize(
    ("hook", "step", "outcome", "reason", "retry_after", "detail"),
    [
        ("alerts-hook", "ratelimited:4", Outcome.RETRY, Reason.RATE_LIMITED, 4.0, "rate_limited"),
        (
            "alerts-hook",
            "ratelimited:none",
            Outcome.RETRY,
            Reason.RATE_LIMITED,
            1.0,
            "rate_limited",
        ),
        ("alerts-hook", "server_error", Outcome.RETRY, Reason.SERVER_ERROR, None, "http_500"),
        ("alerts-hook", "timeout", Outcome.RETRY, Reason.TIMEOUT, None, None),
        ("alerts-hook", "drop_connection", Outcome.RETRY, Reason.CONNECTION, None, None),
        (
            "alerts-hook",
            "invalid_payload",
            Outcome.PERMANENT,
            Reason.INVALID_PAYLOAD,
            None,
            "invalid_payload",
        ),
        (
            "alerts-hook",
            "action_prohibited",
            Outcome.PERMANENT,
            Reason.AUTH,
            None,
            "action_prohibited",
        ),
        (
            "alerts-hook",
            "posting_to_general_channel_denied",
            Outcome.PERMANENT,
            Reason.CHANNEL,
            None,
            "posting_to_general_channel_denied",
        ),
        (
            "alerts-hook",
            "channel_not_found",
            Outcome.PERMANENT,
            Reason.CHANNEL,
            None,
            "channel_not_found",
        ),
        ("unknown-hook", None, Outcome.PERMANENT, Reason.AUTH, None, "no_service"),
        ("archived-hook", None, Outcome.PERMANENT, Reason.CHANNEL, None, "channel_is_archived"),
    ],
)
async def test_webhook_failures_are_classified(
    fake: FakeSlack,
    hook: str,
    step: str | None,
    outcome: Outcome,
    reason: Reason,
    retry_after: float | None,
    detail: str | None,
) -> None:
    if step is not None:
        fake.script(hook, [step])
    url = fake.webhook_url(hook)

    result = await hook_sender(url).send(MESSAGE)

    assert (result.outcome, result.reason, result.retry_after) == (outcome, reason, retry_after)
    if detail is not None:
        assert result.detail == detail
    assert_no_secret(result, url, hook)
    assert fake.messages == []


async def test_webhook_no_text_is_invalid_payload(fake: FakeSlack) -> None:
    result = await hook_sender(fake.webhook_url("alerts-hook")).send(out(""))
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.PERMANENT,
        Reason.INVALID_PAYLOAD,
        "no_text",
    )


# ------------------------------------------------------------------ keys, construction


def test_pacing_keys_never_contain_the_webhook_url() -> None:
    url = "http://127.0.0.1:9/services/T000/B000/secret-part"
    destination = WebhookDestination.model_validate({"type": "webhook", "url": url})
    key = kind(destination).pace_key(destination, False)
    assert key == "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:16]
    assert "secret-part" not in key


def test_senders_refuse_clients_that_retry_by_themselves() -> None:
    with pytest.raises(ValueError, match="expected retry_handlers=\\[\\]"):
        SlackChannelSender(AsyncWebClient(token=VALID_TOKEN), "#browser-alerts")


# ------------------------------------------------------------------ console (dry run)


async def test_console_sender_prints_one_json_line_per_message() -> None:
    stream = io.StringIO()
    sender = ConsoleSender(stream, destination="alerts", channel="#browser-alerts")

    first = await sender.send(MESSAGE)
    reply = await sender.send(out("more", thread_ts=first.ts))

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines == [
        {
            "destination": "alerts",
            "channel": "#browser-alerts",
            "text": "Task failed",
            "blocks": BLOCKS,
            "thread_ts": None,
        },
        {
            "destination": "alerts",
            "channel": "#browser-alerts",
            "text": "more",
            "blocks": [],
            "thread_ts": first.ts,
        },
    ]
    assert first.outcome is reply.outcome is Outcome.SENT
    assert first.ts != reply.ts


# ------------------------------------------------------------------ pure classification


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"status": 429}, (Outcome.RETRY, Reason.RATE_LIMITED)),
        ({"status": 503, "error": ""}, (Outcome.RETRY, Reason.SERVER_ERROR)),
        ({"status": 200, "error": "token_revoked"}, (Outcome.PERMANENT, Reason.AUTH)),
        ({"status": 404, "error": "no_service"}, (Outcome.PERMANENT, Reason.AUTH)),
        ({"status": 410, "error": "channel_is_archived"}, (Outcome.PERMANENT, Reason.CHANNEL)),
        ({"status": 403, "error": "<html>"}, (Outcome.PERMANENT, Reason.AUTH)),
        ({"status": 200, "error": "message_not_found"}, (Outcome.PERMANENT, Reason.NOT_FOUND)),
        ({"status": 200, "error": "something_new"}, (Outcome.PERMANENT, Reason.UNKNOWN)),
        ({"exception": TimeoutError()}, (Outcome.RETRY, Reason.TIMEOUT)),
        ({"exception": ConnectionResetError()}, (Outcome.RETRY, Reason.CONNECTION)),
    ],
)
def test_classify_slack_error(kwargs: dict[str, Any], expected: tuple[Outcome, Reason]) -> None:
    assert classify_slack_error(**kwargs) == expected


def test_retry_unknown_is_for_senders_that_raised() -> None:
    result = DeliveryResult.retry_unknown("KeyError")
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.RETRY,
        Reason.UNKNOWN,
        "KeyError",
    )
