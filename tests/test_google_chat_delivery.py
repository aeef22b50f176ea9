"""Google Chat delivery against the fake Google Chat over real HTTP: what is sent (the card,
the thread key and the reply option that makes Google honour it), what each answer becomes
(sent with the message's name / retry(after) / permanent(reason)), that a 400 is never retried,
that no result carries the webhook URL or its token; and the destination type: config, pacing
per space, dry-run, and what `relay check` says about it."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakegooglechat import API_KEY, FakeGoogleChat, check_message

from relay.config import parse_config
from relay.config.destinations import GoogleChatDestination
from relay.delivery.destinations import Clients, build_senders, describe, kind, pace_keys, paces
from relay.delivery.google_chat import GoogleChatSender, space_of, thread_key
from relay.delivery.policy import RetryPolicy, settlement
from relay.errors import ConfigError
from relay.messages import Blocks, Button, Card, Field
from relay.ops.check import check
from relay.records import MessageRef, OutboxRow, Outcome, Outgoing, Reason, Status
from relay.runtime import build_runtime

CARD = Card(
    "failure",
    "Task failed: invalid credentials",
    fact="`tsk_1` · Login rejected",
    summary="The site rejected the login.",
    fields=(Field("Task", "`tsk_1`"), Field("Duration", "1m 1s")),
    buttons=(Button("Open session", "https://app.example.com/s/1", "primary"),),
)
TIMEOUT = 1.0  # seconds; the fake's "timeout" step hangs far longer


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGoogleChat]:
    with FakeGoogleChat() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake: FakeGoogleChat) -> None:
    fake.reset()


@pytest.fixture
async def client() -> Any:
    async with httpx.AsyncClient() as http:
        yield http


def sender(url: str, client: httpx.AsyncClient | None) -> GoogleChatSender:
    return GoogleChatSender(url, client, TIMEOUT)


def ref(name: str, thread: str | None) -> MessageRef:
    return MessageRef(thread, name, None, 1, 0.0, 0.0)


def assert_no_secret(fake: FakeGoogleChat, result: Any, hook: str = "alerts") -> None:
    shown = repr(result)
    assert fake.token(hook) not in shown and API_KEY not in shown and "127.0.0.1" not in shown


# ---------------------------------------------------------------- success


async def test_a_card_is_posted_and_its_name_and_thread_come_back(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    result = await sender(fake.webhook_url("alerts"), client).send(Outgoing(CARD))
    (message,) = fake.messages
    assert (result.outcome, result.reason) == (Outcome.SENT, Reason.OK)
    assert result.ts == message.name and result.ts.startswith("spaces/AAAAalerts1/messages/")
    assert result.channel_id == message.thread
    assert message.new_thread and message.thread_key is None
    assert message.text is not None and message.text.startswith("\u274c Task failed")
    assert message.cards is not None and message.cards[0]["card"]["header"]["title"]
    (request,) = fake.requests
    assert request.query == {}  # no reply option without a thread
    assert_no_secret(fake, result)


async def test_a_block_kit_message_is_posted_as_its_text(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    blocks = Blocks("*Deploy* done", ({"type": "divider"},))
    result = await sender(fake.webhook_url("alerts"), client).send(Outgoing(blocks))
    assert result.outcome is Outcome.SENT
    (message,) = fake.messages
    assert message.body == {"text": "*Deploy* done"}


async def test_without_a_shared_client_the_sender_opens_its_own(fake: FakeGoogleChat) -> None:
    result = await sender(fake.webhook_url("alerts"), None).send(Outgoing(CARD))
    assert result.outcome is Outcome.SENT and len(fake.messages) == 1


# ---------------------------------------------------------------- threads


async def test_one_conversation_key_is_one_thread(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    post = sender(fake.webhook_url("alerts"), client)
    first = await post.send(Outgoing(CARD, thread="anchor:ses_1"))
    # a reply under the parent relay remembers, and a post after relay forgot the thread
    parent = ref(str(first.ts), first.channel_id)
    second = await post.send(Outgoing(CARD, reply_to=parent, thread="anchor:ses_1"))
    third = await post.send(Outgoing(CARD, thread="anchor:ses_1"))
    other = await post.send(Outgoing(CARD, thread="anchor:ses_2"))

    one, two, three, four = fake.messages
    assert one.new_thread and not two.new_thread and not three.new_thread and four.new_thread
    assert one.thread == two.thread == three.thread != four.thread
    assert first.channel_id == second.channel_id == third.channel_id != other.channel_id
    for request in fake.requests:
        # Google ignores a thread key without this option: the message would start a thread
        assert request.query == {"messageReplyOption": "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"}
    key = thread_key("anchor:ses_1")
    assert one.thread_key == key and "ses_1" not in key and len(key) <= 4000
    assert thread_key("anchor:ses_1") == key  # stable across restarts and replicas


async def test_without_the_reply_option_google_silently_starts_new_threads(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    """What a sender that forgets `messageReplyOption` gets (and why the option is sent)."""
    body = {"text": "x", "thread": {"threadKey": "k"}}
    for _ in range(2):
        answer = await client.post(fake.webhook_url("alerts"), json=body)
        assert answer.status_code == 200
    first, second = fake.messages
    assert first.thread != second.thread and second.new_thread


async def test_an_update_is_posted_as_a_reply_with_the_new_state(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    post = sender(fake.webhook_url("alerts"), client)
    queued = await post.send(Outgoing(Card("queued", "Task run queued"), thread="deck:trun_1"))
    done = Card("success", "Task run completed")
    original = ref(str(queued.ts), queued.channel_id)
    result = await post.send(Outgoing(done, update=original, thread="deck:trun_1"))
    assert result.outcome is Outcome.SENT and result.ts != queued.ts
    first, reply = fake.messages
    assert reply.thread == first.thread and not reply.new_thread
    assert reply.text is not None and "Task run completed" in reply.text
    assert first.text is not None and "queued" in first.text  # webhooks cannot edit it


async def test_a_repeat_without_a_conversation_key_replies_in_the_first_messages_thread(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    post = sender(fake.webhook_url("alerts"), client)
    first = await post.send(Outgoing(CARD))
    again = await post.send(Outgoing(CARD, update=ref(str(first.ts), first.channel_id)))
    one, two = fake.messages
    assert two.thread == one.thread == again.channel_id and not two.new_thread
    assert two.body["thread"] == {"name": one.thread}
    assert fake.requests[1].query == {"messageReplyOption": "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"}


async def test_thread_keys_belong_to_their_webhook(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    await sender(fake.webhook_url("alerts"), client).send(Outgoing(CARD, thread="k"))
    await sender(fake.webhook_url("alerts-bis"), client).send(Outgoing(CARD, thread="k"))
    one, two = fake.messages
    assert one.space == two.space and one.thread != two.thread


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("step", "outcome", "reason", "detail", "after"),
    [
        ("status:400", Outcome.PERMANENT, Reason.INVALID_PAYLOAD, "INVALID_ARGUMENT", None),
        ("status:401", Outcome.PERMANENT, Reason.AUTH, "UNAUTHENTICATED", None),
        ("status:403", Outcome.PERMANENT, Reason.AUTH, "PERMISSION_DENIED", None),
        ("status:404", Outcome.PERMANENT, Reason.CHANNEL, "NOT_FOUND", None),
        ("ratelimited", Outcome.RETRY, Reason.RATE_LIMITED, "RESOURCE_EXHAUSTED", None),
        ("ratelimited:7", Outcome.RETRY, Reason.RATE_LIMITED, "RESOURCE_EXHAUSTED", 7.0),
        ("status:500", Outcome.RETRY, Reason.SERVER_ERROR, "INTERNAL", None),
        ("status:503", Outcome.RETRY, Reason.SERVER_ERROR, "UNAVAILABLE", None),
        ("html:502", Outcome.RETRY, Reason.SERVER_ERROR, "http_502", None),
        ("timeout", Outcome.RETRY, Reason.TIMEOUT, "ReadTimeout", None),
        ("drop_connection", Outcome.RETRY, Reason.CONNECTION, "RemoteProtocolError", None),
    ],
)
async def test_answers_are_classified(
    fake: FakeGoogleChat,
    client: httpx.AsyncClient,
    step: str,
    outcome: Outcome,
    reason: Reason,
    detail: str,
    after: float | None,
) -> None:
    fake.script("alerts", [step])
    result = await sender(fake.webhook_url("alerts"), client).send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.detail) == (outcome, reason, detail)
    assert result.retry_after == after  # Google sends none: the worker's backoff decides
    assert len(fake.requests) == 1 and not fake.messages  # one attempt, nothing posted
    assert_no_secret(fake, result)


async def test_a_payload_google_refuses_is_permanent_and_never_retried(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    class Oversized(GoogleChatSender):  # what a formatter bug would send
        async def _post(self, client: Any, url: str, body: Any) -> Any:
            return await super()._post(client, url, {**body, "text": "x" * 40_000})

    result = await Oversized(fake.webhook_url("alerts"), client).send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.PERMANENT,
        Reason.INVALID_PAYLOAD,
        "INVALID_ARGUMENT",
    )
    row = OutboxRow(1, "anchor", "e", "task.failed", "gc", "k", "t", CARD, Status.INFLIGHT,
                    1, 0.0, 0.0, None, None)  # fmt: skip
    decided = settlement(row, result, (), 1.0, RetryPolicy(), lambda: 0.5)
    assert decided.status is Status.DEAD and decided.reason is Reason.INVALID_PAYLOAD


async def test_a_wrong_key_token_or_space_is_permanent_and_names_no_secret(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    cases = {
        fake.webhook_url("alerts", key="AIzaWrong"): (Reason.AUTH, "INVALID_ARGUMENT"),
        fake.webhook_url("alerts", token="revoked"): (Reason.AUTH, "PERMISSION_DENIED"),
        fake.webhook_url("alerts", space="AAAAother01"): (Reason.CHANNEL, "NOT_FOUND"),
        fake.webhook_url("events", space="AAAAalerts1"): (Reason.AUTH, "PERMISSION_DENIED"),
    }
    for url, (reason, detail) in cases.items():
        result = await sender(url, client).send(Outgoing(CARD))
        assert (result.outcome, result.reason, result.detail) == (Outcome.PERMANENT, reason, detail)
        assert "revoked" not in repr(result) and "AIzaWrong" not in repr(result)
        assert_no_secret(fake, result)
    fake.delete_space("AAAAalerts1")
    gone = await sender(fake.webhook_url("alerts"), client).send(Outgoing(CARD))
    assert (gone.outcome, gone.reason, gone.detail) == (
        Outcome.PERMANENT,
        Reason.CHANNEL,
        "NOT_FOUND",
    )  # not NOT_FOUND as a reason: that would make relay post an update anew, forever
    assert not fake.messages


async def test_nothing_listening_is_a_connection_retry(client: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/spaces/AAAA/messages?key=k&token=secret-token"
    result = await sender(url, client).send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.detail) == (
        Outcome.RETRY,
        Reason.CONNECTION,
        "ConnectError",
    )
    assert "secret-token" not in repr(result)


async def test_the_space_rate_limit_is_shared_by_its_webhooks(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    fake.set_rate_limit(1)
    try:
        first = await sender(fake.webhook_url("alerts"), client).send(Outgoing(CARD))
        second = await sender(fake.webhook_url("alerts-bis"), client).send(Outgoing(CARD))
        other = await sender(fake.webhook_url("events"), client).send(Outgoing(CARD))
    finally:
        fake.set_rate_limit(None)
    assert first.outcome is Outcome.SENT and other.outcome is Outcome.SENT
    assert (second.outcome, second.reason, second.retry_after) == (
        Outcome.RETRY,
        Reason.RATE_LIMITED,
        None,
    )


# ---------------------------------------------------------------- the destination type


def config(destinations: str, routes: str = "default: {to: [gc]}", env: Any = None) -> Any:
    sources = "sources: {a: {provider: anchor, secrets: [s]}}"
    text = f"{sources}\ndestinations:\n{destinations}\n{routes}\n"
    return parse_config(text, Path("relay.yaml"), env or {})


URL = "https://chat.googleapis.com/v1/spaces/AAAAspace01/messages?key=KEY&token=TOKEN%3D"


def test_the_webhook_url_is_a_secret_from_the_environment_or_empty() -> None:
    loaded = config(
        '  gc: {type: google_chat, webhook_url: "${GOOGLE_CHAT_WEBHOOK_URL}"}',
        env={"GOOGLE_CHAT_WEBHOOK_URL": URL},
    )
    destination = loaded.config.destinations["gc"]
    assert isinstance(destination, GoogleChatDestination)
    assert destination.webhook_url is not None
    assert destination.webhook_url.get_secret_value() == URL
    assert "TOKEN" not in repr(destination) and "TOKEN" not in describe(destination, False)
    blank = config('  gc: {type: google_chat, webhook_url: "${GOOGLE_CHAT_WEBHOOK_URL:-}"}')
    assert blank.config.destinations["gc"].webhook_url is None
    with pytest.raises(ConfigError) as refused:
        config('  gc: {type: google_chat, webhook_url: "chat.googleapis.com/v1/spaces/A"}')
    assert "destinations.gc.webhook_url: not an http(s) URL" in str(refused.value)


def test_webhooks_of_one_space_share_one_pacing_key_at_one_a_second() -> None:
    other = URL.replace("token=TOKEN%3D", "token=OTHER")
    elsewhere = URL.replace("AAAAspace01", "AAAAspace02")
    loaded = config(
        f'  gc: {{type: google_chat, webhook_url: "{URL}"}}\n'
        f'  gc2: {{type: google_chat, webhook_url: "{other}"}}\n'
        f'  gc3: {{type: google_chat, webhook_url: "{elsewhere}"}}'
    )
    keys = pace_keys(loaded.config, dry_run=False)
    assert keys["gc"] == keys["gc2"] != keys["gc3"]
    for key in keys.values():
        assert key.startswith("google_chat:")
        assert "AAAA" not in key and "TOKEN" not in key and "KEY" not in key
    assert paces(loaded.config, keys)[keys["gc"]] == (1.0, 1.0)
    assert space_of(URL) == "AAAAspace01"


def test_the_kind_says_what_google_chat_can_do() -> None:
    chat = kind(GoogleChatDestination(type="google_chat"))
    assert (chat.chat, chat.threads, chat.updates, chat.pacing) == ("google_chat", True, False,
                                                                   (1.0, 1.0))  # fmt: skip
    assert chat.takes_mention("google_chat:users/1") and not chat.takes_mention("U0123ABCD")


async def test_without_a_url_it_prints_what_google_would_be_sent() -> None:
    loaded = config('  gc: {type: google_chat, webhook_url: ""}')
    console = io.StringIO()
    senders = build_senders(loaded.config, Clients(None, console, 10.0))
    result = await senders["gc"].send(Outgoing(CARD))
    assert result.outcome is Outcome.SENT
    line = json.loads(console.getvalue())
    assert line["chat"] == "google_chat" and line["destination"] == "gc"
    assert check_message({k: line[k] for k in ("text", "cardsV2")}) is None
    assert pace_keys(loaded.config, dry_run=False)["gc"] == "console"


CHECKED = """
sources: {anchor: {provider: anchor, secrets: [s]}}
destinations:
  gc: {type: google_chat, webhook_url: "%s"}
routes:
  - match: {source: anchor, type: "session.*"}
    to: [gc]
    thread: auto
    mention: ["@here", "google_chat:users/42", U0123ABCD]
  - match: {source: anchor, type: task.failed}
    to: [gc]
    repeat: {key: [data.task_id], interval: 1h}
%s
default: {to: [gc]}
"""


def test_relay_check_says_what_google_chat_cannot_do(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/v1/spaces/AAAA/messages?key=k"
    report = check(build_runtime(parse_config(CHECKED % (url, ""), tmp_path / "r.yaml", {})))
    assert report.errors == []
    assert report.warnings == [
        "destinations.gc: webhook_url is plain http: its token travels in clear",
        "destinations.gc: webhook_url's host is not chat.googleapis.com: fine for a proxy or a"
        " test server",
        "destinations.gc: webhook_url has no token=...: Google answers 403 without one",
        "routes[0].thread: destination 'gc' (google_chat) cannot update a message in place:"
        " each change of state is posted anew",
        "routes[0].mention[2]: 'U0123ABCD' has no form in google_chat (destination 'gc'):"
        " left out of its messages",
        "routes[1].repeat: destination 'gc' (google_chat) cannot update a message in place:"
        " each repeat is posted",
    ]
    assert all("127.0.0.1" not in w for w in report.warnings)


def test_relay_check_refuses_a_block_kit_template_for_google_chat(tmp_path: Path) -> None:
    folder = tmp_path / "templates" / "anchor"
    folder.mkdir(parents=True)
    (folder / "task.completed.j2").write_text(
        '{"text": "done", "blocks": [{"type": "divider"}]}', encoding="utf-8"
    )
    text = CHECKED % (URL, "templates: ./templates")
    report = check(build_runtime(parse_config(text, tmp_path / "r.yaml", {})))
    assert any(
        "template 'anchor/task.completed' renders Slack Block Kit, which destination 'gc'"
        " (google_chat) cannot show" in error
        for error in report.errors
    ), report.errors
