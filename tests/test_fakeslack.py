"""The fake Slack answers like Slack (SLACK.md): status codes, bodies, content types, threads,
Block Kit limits, scripted failures, rate limiting, and the standalone process mode."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakeslack import VALID_TOKEN, FakeSlack

AUTH = {"Authorization": f"Bearer {VALID_TOKEN}"}
TS = re.compile(r"^\d{10}\.\d{6}$")


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


def post(fake: FakeSlack, method: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", AUTH)
    return httpx.post(fake.api_url + method, json=body, headers=headers, **kwargs)


def error_of(response: httpx.Response) -> str:
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["ok"] is False
    return str(body["error"])


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# ------------------------------------------------------------------ chat.postMessage


def test_post_message_answers_like_slack(fake: FakeSlack) -> None:
    response = post(fake, "chat.postMessage", {"channel": "#browser-alerts", "text": "hello"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["ok"] is True
    assert body["channel"] == "C0ALERTS01"
    assert TS.match(body["ts"])
    assert body["message"]["text"] == "hello"
    assert body["message"]["ts"] == body["ts"]
    [message] = fake.messages
    assert (message.channel, message.ts, message.text) == ("C0ALERTS01", body["ts"], "hello")


def test_ts_values_are_unique_increasing_strings(fake: FakeSlack) -> None:
    stamps = [
        post(fake, "chat.postMessage", {"channel": "browser-events", "text": str(i)}).json()["ts"]
        for i in range(5)
    ]
    assert stamps[0] == "1700000000.000100"
    assert len(set(stamps)) == 5
    assert [float(s) for s in stamps] == sorted(float(s) for s in stamps)


@pytest.mark.parametrize("channel", ["#browser-alerts", "browser-alerts", "C0ALERTS01"])
def test_channel_by_name_or_id(fake: FakeSlack, channel: str) -> None:
    body = post(fake, "chat.postMessage", {"channel": channel, "text": "x"}).json()
    assert body["channel"] == "C0ALERTS01"


def test_form_encoded_post_with_token_in_body(fake: FakeSlack) -> None:
    blocks = json.dumps([section("*bold*")])
    response = httpx.post(
        fake.api_url + "chat.postMessage",
        data={"token": VALID_TOKEN, "channel": "general", "text": "t", "blocks": blocks},
    )
    assert response.json()["ok"] is True
    assert fake.messages[0].blocks == [section("*bold*")]


@pytest.mark.parametrize(
    ("headers", "error"),
    [({}, "not_authed"), ({"Authorization": "Bearer xoxb-wrong"}, "invalid_auth")],
)
def test_auth_errors_are_http_200_ok_false(
    fake: FakeSlack, headers: dict[str, str], error: str
) -> None:
    response = post(fake, "chat.postMessage", {"channel": "general", "text": "x"}, headers=headers)
    assert error_of(response) == error
    assert fake.messages == []


def test_channel_errors(fake: FakeSlack) -> None:
    assert error_of(post(fake, "chat.postMessage", {"channel": "#nope", "text": "x"})) == (
        "channel_not_found"
    )
    assert error_of(post(fake, "chat.postMessage", {"channel": "old-alerts", "text": "x"})) == (
        "is_archived"
    )


def test_no_text_and_no_blocks(fake: FakeSlack) -> None:
    assert error_of(post(fake, "chat.postMessage", {"channel": "general"})) == "no_text"
    assert error_of(post(fake, "chat.postMessage", {"channel": "general", "text": ""})) == "no_text"


def test_blocks_without_text_are_accepted_with_a_warning(fake: FakeSlack) -> None:
    body = post(fake, "chat.postMessage", {"channel": "general", "blocks": [section("x")]}).json()
    assert body["ok"] is True
    assert body["response_metadata"]["warnings"] == ["missing_text"]


def test_message_too_long(fake: FakeSlack) -> None:
    response = post(fake, "chat.postMessage", {"channel": "general", "text": "x" * 40_001})
    assert error_of(response) == "msg_too_long"


def test_blocks_too_long_in_total(fake: FakeSlack) -> None:
    blocks = [section("y" * 2900) for _ in range(5)]
    response = post(fake, "chat.postMessage", {"channel": "general", "text": "t", "blocks": blocks})
    assert error_of(response) == "msg_blocks_too_long"


def button(text: str, action_id: str, url: str = "https://example.com") -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "url": url,
    }


INVALID_BLOCKS: dict[str, tuple[list[dict[str, Any]], str]] = {
    "51 blocks": ([{"type": "divider"}] * 51, "/blocks"),
    "section text 3001": ([section("x" * 3001)], "/blocks/0/text/text"),
    "empty section text": ([section("")], "/blocks/0/text/text"),
    "11 fields": (
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
        "/blocks/0/fields",
    ),
    "field 2001": (
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
        "/blocks/0/fields/0/text",
    ),
    "header mrkdwn": (
        [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}],
        "/blocks/0/text/type",
    ),
    "header 151": (
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        "/blocks/0/text/text",
    ),
    "11 context elements": (
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
        "/blocks/0/elements",
    ),
    "26 buttons": (
        [{"type": "actions", "elements": [button("b", f"a{i}") for i in range(26)]}],
        "/blocks/0/elements",
    ),
    "button text 76": (
        [{"type": "actions", "elements": [button("b" * 76, "a")]}],
        "/blocks/0/elements/0/text/text",
    ),
    "button url 3001": (
        [{"type": "actions", "elements": [button("b", "a", "https://x.io/" + "u" * 2988)]}],
        "/blocks/0/elements/0/url",
    ),
    "duplicate action_id": (
        [{"type": "actions", "elements": [button("b", "same"), button("c", "same")]}],
        "/blocks/0/elements/1/action_id",
    ),
    "image without alt_text": (
        [{"type": "image", "image_url": "https://example.com/a.png"}],
        "/blocks/0",
    ),
    "image that cannot be downloaded": (
        [{"type": "image", "image_url": "https://img.invalid/a.png", "alt_text": "a"}],
        "/blocks/0/image_url",
    ),
    "unknown block type": ([{"type": "banner"}], "/blocks/0/type"),
}


@pytest.mark.parametrize("case", list(INVALID_BLOCKS))
def test_invalid_blocks_name_the_json_pointer(fake: FakeSlack, case: str) -> None:
    blocks, pointer = INVALID_BLOCKS[case]
    response = post(fake, "chat.postMessage", {"channel": "general", "text": "t", "blocks": blocks})

    assert error_of(response) == "invalid_blocks"
    messages = response.json()["response_metadata"]["messages"]
    assert any(m.startswith("[ERROR] ") and f"[json-pointer:{pointer}]" in m for m in messages)
    assert fake.messages == []


def test_blocks_at_the_limits_are_accepted(fake: FakeSlack) -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
        section("s" * 3000),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 200}] * 10},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 10},
        {"type": "actions", "elements": [button("b" * 75, f"a{i}") for i in range(25)]},
        {"type": "image", "image_url": "https://example.com/a.png", "alt_text": "a"},
    ]
    blocks += [{"type": "divider"}] * (50 - len(blocks))
    response = post(fake, "chat.postMessage", {"channel": "general", "text": "t", "blocks": blocks})
    assert response.json()["ok"] is True


# ------------------------------------------------------------------ threads


def test_thread_ts_must_be_the_exact_parent_string(fake: FakeSlack) -> None:
    parent = post(fake, "chat.postMessage", {"channel": "general", "text": "parent"}).json()["ts"]
    exact = {"channel": "general", "text": "reply", "thread_ts": parent}
    as_float = {"channel": "general", "text": "lost", "thread_ts": str(float(parent))}

    reply = post(fake, "chat.postMessage", exact).json()
    lost = post(fake, "chat.postMessage", as_float).json()

    assert str(float(parent)) != parent  # "1700000000.0001" vs "1700000000.000100"
    assert reply["message"]["thread_ts"] == parent
    assert "thread_ts" not in lost["message"]
    by_text = {m.text: m for m in fake.messages}
    assert by_text["reply"].thread_ts == parent
    assert by_text["lost"].thread_ts is None
    assert by_text["lost"].requested_thread_ts == str(float(parent))


def test_reply_to_a_reply_lands_in_the_parent_thread(fake: FakeSlack) -> None:
    parent = post(fake, "chat.postMessage", {"channel": "general", "text": "p"}).json()["ts"]
    reply = post(
        fake, "chat.postMessage", {"channel": "general", "text": "r", "thread_ts": parent}
    ).json()["ts"]
    post(fake, "chat.postMessage", {"channel": "general", "text": "rr", "thread_ts": reply})
    assert fake.messages[-1].thread_ts == parent


def test_thread_ts_of_another_channel_does_not_thread(fake: FakeSlack) -> None:
    parent = post(fake, "chat.postMessage", {"channel": "general", "text": "p"}).json()["ts"]
    post(fake, "chat.postMessage", {"channel": "browser-events", "text": "r", "thread_ts": parent})
    assert fake.messages[-1].thread_ts is None


# ------------------------------------------------------------------ chat.update, auth.test


def test_chat_update_needs_the_channel_id(fake: FakeSlack) -> None:
    ts = post(fake, "chat.postMessage", {"channel": "general", "text": "v1"}).json()["ts"]

    by_name = post(fake, "chat.update", {"channel": "general", "ts": ts, "text": "v2"})
    by_id = post(fake, "chat.update", {"channel": "C0GENERAL1", "ts": ts, "text": "v2"})

    assert error_of(by_name) == "channel_not_found"
    body = by_id.json()
    assert (body["ok"], body["channel"], body["ts"], body["text"]) == (True, "C0GENERAL1", ts, "v2")
    assert fake.current("C0GENERAL1", ts)["text"] == "v2"
    assert [u.text for u in fake.updates] == ["v2"]


def test_chat_update_errors(fake: FakeSlack) -> None:
    foreign = fake.add_foreign_message("general", "someone else's")
    unknown = post(fake, "chat.update", {"channel": "C0GENERAL1", "ts": "1.000001", "text": "x"})
    not_ours = post(fake, "chat.update", {"channel": "C0GENERAL1", "ts": foreign, "text": "x"})
    assert error_of(unknown) == "message_not_found"
    assert error_of(not_ours) == "cant_update_message"


def test_auth_test(fake: FakeSlack) -> None:
    body = post(fake, "auth.test", {}).json()
    assert body["ok"] is True
    assert body["user_id"] == "U0FAKEBOT"
    assert error_of(post(fake, "auth.test", {}, headers={})) == "not_authed"


def test_unknown_method(fake: FakeSlack) -> None:
    response = post(fake, "chat.nope", {})
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_method"


# ------------------------------------------------------------------ scripted scenarios


def test_ratelimited_is_http_429_with_integer_retry_after(fake: FakeSlack) -> None:
    fake.script("#general", ["ratelimited:3"])
    response = post(fake, "chat.postMessage", {"channel": "general", "text": "x"})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {"ok": False, "error": "ratelimited"}
    assert fake.messages == []


def test_script_runs_in_order_then_behaves_normally(fake: FakeSlack) -> None:
    fake.script("C0GENERAL1", ["server_error", "invalid_auth", "http:503"])
    answers = [post(fake, "chat.postMessage", {"channel": "#general", "text": "x"}) for _ in "1234"]

    assert [a.status_code for a in answers] == [500, 200, 503, 200]
    assert answers[0].headers["content-type"].startswith("text/html")
    assert answers[1].json() == {"ok": False, "error": "invalid_auth"}
    assert answers[3].json()["ok"] is True
    assert [r.error for r in fake.requests] == ["http_500", "invalid_auth", "http_503", None]


def test_script_only_affects_its_target(fake: FakeSlack) -> None:
    fake.script("general", ["channel_not_found"])
    other = post(fake, "chat.postMessage", {"channel": "browser-events", "text": "x"})
    assert other.json()["ok"] is True


def test_drop_connection_sends_no_response(fake: FakeSlack) -> None:
    fake.script("general", ["drop_connection"])
    with pytest.raises(httpx.RemoteProtocolError):
        post(fake, "chat.postMessage", {"channel": "general", "text": "x"})
    assert fake.messages == []
    deadline = time.monotonic() + 5  # the server thread records the drop after closing
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.requests[0].status is None


def test_timeout_hangs_past_the_client_timeout(fake: FakeSlack) -> None:
    fake.script("general", ["timeout"])
    with pytest.raises(httpx.ReadTimeout):
        post(fake, "chat.postMessage", {"channel": "general", "text": "x"}, timeout=0.5)
    assert fake.messages == []


def test_timeout_after_post_posts_but_never_answers(fake: FakeSlack) -> None:
    fake.script("general", ["timeout_after_post"])
    with pytest.raises(httpx.ReadTimeout):
        post(fake, "chat.postMessage", {"channel": "general", "text": "x"}, timeout=0.5)
    assert [m.text for m in fake.messages] == ["x"]


def test_script_rejects_unknown_steps(fake: FakeSlack) -> None:
    with pytest.raises(ValueError, match="'Ratelimited!'"):
        fake.script("general", ["Ratelimited!"])


def test_rate_limit_mode_answers_429_per_channel() -> None:
    with FakeSlack(rate_limit=2) as fake:
        answers = [
            post(fake, "chat.postMessage", {"channel": "general", "text": "x"}) for _ in "123"
        ]
        other = post(fake, "chat.postMessage", {"channel": "browser-events", "text": "x"})
        time.sleep(1.05)
        later = post(fake, "chat.postMessage", {"channel": "general", "text": "x"})

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["retry-after"] == "1"
    assert answers[2].json() == {"ok": False, "error": "ratelimited"}
    assert other.json()["ok"] is True
    assert later.json()["ok"] is True


def test_records_hide_the_token(fake: FakeSlack) -> None:
    httpx.post(
        fake.api_url + "chat.postMessage",
        data={"token": VALID_TOKEN, "channel": "general", "text": "t"},
    )
    post(fake, "chat.postMessage", {"channel": "general", "text": "t"})
    assert VALID_TOKEN not in repr(fake.requests) + repr(fake.messages)


def test_clients_are_told_apart_by_their_prefix(fake: FakeSlack) -> None:
    for client in ("r1", "r2"):
        answer = httpx.post(
            fake.api_url_for(client) + "chat.postMessage",
            json={"channel": "general", "text": client},
            headers=AUTH,
        )
        assert answer.json()["ok"] is True
    post(fake, "chat.postMessage", {"channel": "general", "text": "plain"})
    assert [(r.client, r.body and r.body["text"]) for r in fake.requests] == [
        ("r1", "r1"),
        ("r2", "r2"),
        (None, "plain"),
    ]
    assert [m.text for m in fake.messages_in("general")] == ["r1", "r2", "plain"]


# ------------------------------------------------------------------ incoming webhooks


def test_webhook_success_is_plain_text_ok(fake: FakeSlack) -> None:
    response = httpx.post(fake.webhook_url("alerts-hook"), json={"text": "hi"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "ok"
    [message] = fake.messages
    assert (message.channel, message.text, message.via) == (
        "C0ALERTS01",
        "hi",
        "webhook:alerts-hook",
    )


@pytest.mark.parametrize(
    ("hook", "content", "status", "body"),
    [
        ("alerts-hook", b"{not json", 400, "invalid_payload"),
        ("alerts-hook", b'{"text": ""}', 400, "no_text"),
        ("alerts-hook", b'{"text": "t", "blocks": [{"type": "banner"}]}', 400, "invalid_blocks"),
        ("unknown-hook", b'{"text": "t"}', 404, "no_service"),
        ("archived-hook", b'{"text": "t"}', 410, "channel_is_archived"),
    ],
)
def test_webhook_errors_are_plain_text(
    fake: FakeSlack, hook: str, content: bytes, status: int, body: str
) -> None:
    response = httpx.post(
        fake.webhook_url(hook), content=content, headers={"Content-Type": "application/json"}
    )
    assert (response.status_code, response.text) == (status, body)
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert fake.messages == []


def test_webhook_of_another_workspace_is_no_service(fake: FakeSlack) -> None:
    url = fake.webhook_url("alerts-hook").replace("/T000/", "/T999/")
    response = httpx.post(url, json={"text": "t"})
    assert (response.status_code, response.text) == (404, "no_service")


@pytest.mark.parametrize(
    ("step", "status", "body"),
    [
        ("ratelimited:4", 429, "rate_limited"),
        ("action_prohibited", 403, "action_prohibited"),
        ("posting_to_general_channel_denied", 403, "posting_to_general_channel_denied"),
        ("channel_not_found", 404, "channel_not_found"),
    ],
)
def test_webhook_scripted_errors(fake: FakeSlack, step: str, status: int, body: str) -> None:
    fake.script("alerts-hook", [step])
    response = httpx.post(fake.webhook_url("alerts-hook"), json={"text": "t"})
    assert (response.status_code, response.text) == (status, body)
    if status == 429:
        assert response.headers["retry-after"] == "4"
    assert httpx.post(fake.webhook_url("alerts-hook"), json={"text": "t"}).text == "ok"


# ------------------------------------------------------------------ standalone process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_standalone_process_appends_messages_to_the_state_file(tmp_path: Path) -> None:
    port, state = free_port(), tmp_path / "state.jsonl"
    script = Path(__file__).with_name("fakeslack.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", str(port), "--state-file", str(state)]
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{base}/_fake/health").text == "ok":
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        httpx.post(f"{base}/_fake/script", json={"target": "general", "steps": ["ratelimited"]})
        limited = httpx.post(
            f"{base}/api/chat.postMessage", json={"channel": "general", "text": "a"}, headers=AUTH
        )
        sent = httpx.post(
            f"{base}/api/chat.postMessage", json={"channel": "general", "text": "b"}, headers=AUTH
        ).json()
        hooked = httpx.post(f"{base}/services/T000/B000/events-hook", json={"text": "c"})
        listed = httpx.get(f"{base}/_fake/messages").json()["messages"]
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert limited.status_code == 429
    assert hooked.text == "ok"
    lines = [json.loads(line) for line in state.read_text().splitlines()]
    assert [(m["channel"], m["text"]) for m in lines] == [("C0GENERAL1", "b"), ("C0EVENTS01", "c")]
    assert lines[0]["ts"] == sent["ts"]
    assert [m["text"] for m in listed] == ["b", "c"]


def test_chat_update_keeps_blocks_unless_given(fake: FakeSlack) -> None:
    first = {"channel": "general", "text": "v1", "blocks": [section("one")]}
    ts = post(fake, "chat.postMessage", first).json()["ts"]

    post(fake, "chat.update", {"channel": "C0GENERAL1", "ts": ts, "text": "v2"})
    kept = fake.current("C0GENERAL1", ts)
    post(fake, "chat.update", {"channel": "C0GENERAL1", "ts": ts, "text": "v3", "blocks": []})
    cleared = fake.current("C0GENERAL1", ts)

    assert (kept["text"], kept["blocks"]) == ("v2", [section("one")])
    assert cleared["text"] == "v3"
    assert "blocks" not in cleared


def test_reset_forgets_everything_but_the_setup(fake: FakeSlack) -> None:
    post(fake, "chat.postMessage", {"channel": "general", "text": "x"})
    fake.script("general", ["invalid_auth"])
    fake.reset()
    assert (fake.messages, fake.requests) == ([], [])
    assert post(fake, "chat.postMessage", {"channel": "general", "text": "x"}).json()["ok"] is True
