"""The fake Discord answers as Discord does: what the sender and formatter tests rely on."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fakediscord import FakeDiscord, Hook

ALLOWED = {"allowed_mentions": {"parse": []}}
EMBED = {"title": "t"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeDiscord]:
    with FakeDiscord(rate_limits=False) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeDiscord) -> FakeDiscord:
    server.reset()
    server.rate_limits = False
    return server


def post(fake: FakeDiscord, hook: str, body: dict[str, Any], **params: str) -> httpx.Response:
    return httpx.post(fake.url(hook), params=params, json={**ALLOWED, **body})


def test_wait_answers_the_message_and_without_it_a_bare_204(fake: FakeDiscord) -> None:
    answer = post(fake, "alerts", {"content": "hi"}, wait="true")
    assert answer.status_code == 200
    message = answer.json()
    assert message["id"].isdigit() and message["channel_id"] == fake.hooks["alerts"].channel
    bare = post(fake, "alerts", {"content": "hi"})
    assert bare.status_code == 204 and bare.content == b""
    assert len(fake.messages) == 2


def test_unknown_webhooks_and_wrong_tokens(fake: FakeDiscord) -> None:
    gone = httpx.post(fake.url("alerts").replace("1100000000000000001", "1999999999"), json={})
    assert (gone.status_code, gone.json()["code"]) == (404, 10015)
    bad = httpx.post(fake.url("alerts")[:-3] + "xyz", json={"content": "x"})
    assert (bad.status_code, bad.json()["code"]) == (401, 50027)
    assert fake.messages == []


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"content": "x" * 2001}, ["content"]),
        ({"embeds": [{"title": "x" * 257}]}, ["embeds", "0", "title"]),
        ({"embeds": [{"description": "x" * 4097}]}, ["embeds", "0", "description"]),
        ({"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]}, ["embeds", "0", "fields"]),
        ({"embeds": [{"fields": [{"name": "x" * 257, "value": "v"}]}]},
         ["embeds", "0", "fields", "0", "name"]),
        ({"embeds": [{"fields": [{"name": "n", "value": "x" * 1025}]}]},
         ["embeds", "0", "fields", "0", "value"]),
        ({"embeds": [{"fields": [{"name": "n", "value": ""}]}]},
         ["embeds", "0", "fields", "0", "value"]),
        ({"embeds": [{"footer": {"text": "x" * 2049}}]}, ["embeds", "0", "footer", "text"]),
        ({"embeds": [{"author": {"name": "x" * 257}}]}, ["embeds", "0", "author", "name"]),
        ({"embeds": [EMBED] * 11}, ["embeds"]),
        ({"embeds": [{"description": "x" * 4000}, {"description": "x" * 2001}]}, ["embeds"]),
        ({"embeds": [{"title": "\U0001f600" * 129}]}, ["embeds", "0", "title"]),  # UTF-16 units
        ({"embeds": [EMBED], "allowed_mentions": {"parse": ["users"], "users": ["1234567"]}},
         ["allowed_mentions"]),
    ],
)  # fmt: skip
def test_every_limit_is_a_400_invalid_form_body(
    fake: FakeDiscord, body: dict[str, Any], where: list[str]
) -> None:
    answer = httpx.post(fake.url("alerts"), params={"wait": "true"}, json={**ALLOWED, **body})
    assert answer.status_code == 400
    found = answer.json()
    assert found["code"] == 50035 and found["message"] == "Invalid Form Body"
    node = found["errors"]
    for part in where:
        node = node[part]
    assert node["_errors"][0]["code"]
    assert fake.messages == []


def test_link_buttons_need_with_components_and_interactive_ones_are_refused(
    fake: FakeDiscord,
) -> None:
    row = {"type": 1, "components": [{"type": 2, "style": 5, "label": "Go",
                                      "url": "https://a.example"}]}  # fmt: skip
    ignored = post(fake, "alerts", {"embeds": [EMBED], "components": [row]}, wait="true")
    assert ignored.json()["components"] == []
    kept = post(fake, "alerts", {"embeds": [EMBED], "components": [row]},
                wait="true", with_components="true")  # fmt: skip
    assert kept.json()["components"] == [row]
    click = {"type": 1, "components": [{"type": 2, "style": 1, "label": "x", "custom_id": "c"}]}
    refused = post(fake, "alerts", {"embeds": [EMBED], "components": [click]},
                   wait="true", with_components="true")  # fmt: skip
    assert (refused.status_code, refused.json()["code"]) == (400, 50035)
    long_url = {"type": 1, "components": [{"type": 2, "style": 5, "label": "Go",
                                           "url": "https://a.example/" + "x" * 500}]}  # fmt: skip
    assert post(fake, "alerts", {"embeds": [EMBED], "components": [long_url]},
                with_components="true").status_code == 400  # fmt: skip


def test_a_forum_webhook_needs_a_thread_name_or_a_thread_id(fake: FakeDiscord) -> None:
    missing = post(fake, "forum", {"embeds": [EMBED]}, wait="true")
    assert (missing.status_code, missing.json()["code"]) == (400, 220001)
    started = post(fake, "forum", {"embeds": [EMBED], "thread_name": "Run 1"}, wait="true")
    post_id = started.json()["id"]
    assert started.json()["channel_id"] == post_id  # a forum post's thread has its id
    reply = post(fake, "forum", {"embeds": [EMBED]}, wait="true", thread_id=post_id)
    assert reply.json()["channel_id"] == post_id
    both = post(fake, "forum", {"embeds": [EMBED], "thread_name": "x"}, thread_id=post_id)
    assert both.json()["code"] == 220002
    text = post(fake, "alerts", {"embeds": [EMBED], "thread_name": "x"})
    assert text.json()["code"] == 220003
    unknown = post(fake, "forum", {"embeds": [EMBED]}, thread_id="1234567")
    assert (unknown.status_code, unknown.json()["code"]) == (404, 10003)
    first, second = fake.messages
    assert first.started_thread and first.thread_name == "Run 1"
    assert second.thread_id == post_id and not second.started_thread


def test_edits_replace_what_they_name_and_find_only_the_webhooks_own_messages(
    fake: FakeDiscord,
) -> None:
    posted = post(fake, "alerts", {"content": "a", "embeds": [EMBED]}, wait="true").json()
    edit = httpx.patch(f"{fake.url('alerts')}/messages/{posted['id']}",
                       json={**ALLOWED, "content": "b"})  # fmt: skip
    assert edit.status_code == 200
    assert fake.current(posted["id"])["content"] == "b"
    assert fake.current(posted["id"])["embeds"] == [EMBED]  # left out: kept
    other = httpx.patch(f"{fake.url('events')}/messages/{posted['id']}", json={"content": "c"})
    assert (other.status_code, other.json()["code"]) == (404, 10008)
    fake.delete_message(posted["id"])
    deleted = httpx.patch(f"{fake.url('alerts')}/messages/{posted['id']}", json={"content": "c"})
    assert (deleted.status_code, deleted.json()["code"]) == (404, 10008)


def test_a_message_in_a_thread_is_edited_by_naming_its_thread(fake: FakeDiscord) -> None:
    thread = fake.add_thread("alerts")
    posted = post(fake, "alerts", {"content": "a"}, wait="true", thread_id=thread).json()
    assert posted["channel_id"] == thread
    url = f"{fake.url('alerts')}/messages/{posted['id']}"
    assert httpx.patch(url, json={"content": "b"}).json()["code"] == 10008
    assert httpx.patch(url, params={"thread_id": thread}, json={"content": "b"}).status_code == 200


def test_whether_allowed_mentions_was_sent_is_recorded(fake: FakeDiscord) -> None:
    httpx.post(fake.url("alerts"), json={"content": "no allow-list"})
    post(fake, "alerts", {"content": "with"})
    assert [r.allowed_mentions_sent for r in fake.requests] == [False, True]


def test_rate_limits_per_webhook_with_both_retry_signals() -> None:
    # Discord's 5 requests per 2 s, over a window wide enough for a loaded machine
    with FakeDiscord(webhook_limit=(5, 4.0)) as fake:
        answers = [post(fake, "alerts", {"content": str(i)}, wait="true") for i in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert answers[3].headers["X-RateLimit-Remaining"] == "1"
        assert answers[4].headers["X-RateLimit-Remaining"] == "0"
        assert 0 < float(answers[4].headers["X-RateLimit-Reset-After"]) <= 4
        limited = answers[5]
        assert limited.json()["global"] is False
        assert 0 < limited.json()["retry_after"] <= 4
        assert limited.headers["Retry-After"] == str(math.ceil(limited.json()["retry_after"]))
        assert limited.headers["X-RateLimit-Scope"] == "user"
        assert post(fake, "events", {"content": "other"}).status_code == 204  # its own bucket
        time.sleep(float(answers[4].headers["X-RateLimit-Reset-After"]) + 0.05)
        assert post(fake, "alerts", {"content": "later"}).status_code == 204


def test_rate_limits_per_channel_whatever_the_webhook() -> None:
    hooks = {"a": Hook("1234501", "ta", "7654321"), "b": Hook("1234502", "tb", "7654321")}
    with FakeDiscord(hooks=hooks, channel_limit=(3, 60.0)) as fake:
        answers = [post(fake, hook, {"content": "x"}) for hook in "abab"]
        assert [a.status_code for a in answers] == [204, 204, 204, 429]
        assert answers[-1].headers["X-RateLimit-Scope"] == "shared"
        assert len(fake.messages) == 3


def test_scripted_failures(fake: FakeDiscord) -> None:
    fake.script("alerts", ["ratelimited:0.25", "ratelimited_global", "server_error",
                           "unknown_webhook", "invalid_token", "missing_permissions"])  # fmt: skip
    got = [post(fake, "alerts", {"content": "x"}) for _ in range(6)]
    assert [a.status_code for a in got] == [429, 429, 500, 404, 401, 403]
    assert got[0].json()["retry_after"] == 0.25 and got[0].headers["Retry-After"] == "1"
    assert got[1].json()["global"] is True and got[1].headers["X-RateLimit-Scope"] == "global"
    assert [a.json()["code"] for a in got[3:]] == [10015, 50027, 50013]
    assert fake.messages == []


def test_hooks_are_configurable() -> None:
    hooks = {"solo": Hook("1234567", "tok", "7654321", forum=True)}
    with FakeDiscord(hooks=hooks) as fake:
        answer = post(fake, "solo", {"content": "x", "thread_name": "t"}, wait="true")
        assert answer.status_code == 200 and fake.messages[0].started_thread
