"""Slack interactivity through a running relay (`relay serve` as a process, the fake Slack over
HTTP), on SQLite and PostgreSQL: button clicks signed exactly as Slack signs them, posted to
`POST /slack/interactions`.

A click on Mute 1h silences the next events of that task (proved silenced, not merely slow: an
event posted after it to the same channel arrives) and the message in Slack then says who did
it; the CLI, the API and the console list the silence, and Unmute, `relay silence expire` or
the console's Expire end it. Forged,
stale, replayed, malformed and unknown clicks are refused and change nothing."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from consoleview import read
from fakeslack import FakeSlack, Message
from harness import RelayProcess, post_anchor
from signing import ADMIN_TOKEN, ANCHOR_SECRET, SLACK_SIGNING_SECRET, SLACK_TOKEN, slack_headers

from relay.cli import main

OLD_SECRET = "0123456789abcdef0123456789abcdef"  # being rotated out: still accepted
CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
slack:
  token: "${SLACK_BOT_TOKEN}"
  api_url: "${SLACK_API_URL}"
  signing_secrets: ["${SLACK_SIGNING_SECRET:-}", "${SLACK_OLD_SIGNING_SECRET:-}"]
destinations:
  alerts: {type: slack, channel: "#browser-alerts"}
  events: {type: slack, channel: "#browser-events"}
routes:
  - {match: {type: task.failed}, to: [alerts], buttons: [mute, ack]}
default: {to: [events]}
pacing: {rate: 20, burst: 10}
"""
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ALICE = {"id": "U0ALICE42", "username": "<!channel> alice", "name": "<https://evil.test|alice>"}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def start(
    relay_process: type[RelayProcess],
    slack: FakeSlack,
    tmp_path: Path,
    database: str,
    secrets: bool = True,
) -> RelayProcess:
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG)
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_DATABASE_URL": database,
        "RELAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET if secrets else "",
        "SLACK_OLD_SIGNING_SECRET": OLD_SECRET if secrets else "",
    }
    return relay_process(config, env, tmp_path).start()


def start_with_cli(
    relay_process: type[RelayProcess],
    slack: FakeSlack,
    tmp_path: Path,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> RelayProcess:
    """relay started on `database`, and the test's own `relay` commands pointed at it too."""
    relay = start(relay_process, slack, tmp_path, database)
    monkeypatch.setenv("RELAY_DATABASE_URL", database)
    monkeypatch.chdir(tmp_path)
    return relay


def post(relay: RelayProcess, n: int, task: str, kind: str = "task.failed") -> None:
    body = {
        "id": f"evt_int_{n}",
        "type": kind,
        "created": "2026-05-24T12:18:05.123Z",
        "data": {"task_id": task, "error": {"type": "Timeout", "message": f"timed out ({task})"}},
    }
    answer = post_anchor(relay, json.dumps(body).encode())
    assert answer.status_code == 202, answer.text


def about(slack: FakeSlack, task: str) -> list[Message]:
    return [m for m in slack.messages if task in json.dumps(m.body)]


def arrived(slack: FakeSlack, task: str, timeout: float = 20.0) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := about(slack, task):
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no message about {task} arrived")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def recorded_sent(capsys: pytest.CaptureFixture[str], destination: str, count: int) -> None:
    """Wait until the outbox records `count` messages of `destination` as sent (relay records
    a message's channel and ts right after Slack's answer: a click names that record)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, out, _ = cli(capsys, "outbox")
        rows = [r.split() for r in out.splitlines()[1:] if r.startswith(destination)]
        if rows and rows[0][4] == str(count):
            return
        time.sleep(0.1)
    raise AssertionError(f"{destination}: {count} sent never recorded")


def click_body(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def send(
    relay: RelayProcess,
    body: bytes,
    *,
    secret: str = SLACK_SIGNING_SECRET,
    at: int | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    signed = slack_headers(body, int(time.time()) if at is None else at, secret)
    return httpx.post(
        relay.url + "/slack/interactions",
        content=body,
        headers=signed if headers is None else headers,
        timeout=10,
    )


def current_text(slack: FakeSlack, message: Message) -> str:
    return json.dumps(slack.current(message.channel, message.ts))


def wait_text(slack: FakeSlack, message: Message, needle: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if needle in current_text(slack, message):
            return slack.current(message.channel, message.ts)
        time.sleep(0.05)
    raise AssertionError(f"the message never read {needle!r}: {current_text(slack, message)}")


def notice(current: dict[str, Any]) -> str:
    (line,) = [
        b["elements"][0]["text"]
        for b in current["blocks"]
        if b.get("block_id") == "relay-interaction-notice"
    ]
    return str(line)


def api(relay: RelayProcess, method: str, path: str) -> httpx.Response:
    return httpx.request(method, relay.url + path, headers=AUTH, timeout=10)


def test_mute_click_silences_the_task_for_an_hour_and_unmute_ends_it(
    slack: FakeSlack,
    relay_process: type[RelayProcess],
    tmp_path: Path,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    relay = start_with_cli(relay_process, slack, tmp_path, database, monkeypatch)
    post(relay, 1, "tsk_4f8w")
    message = arrived(slack, "tsk_4f8w")
    (buttons,) = [b for b in message.blocks or [] if b.get("type") == "actions"]
    labels = [(e["action_id"], e["text"]["text"]) for e in buttons["elements"]]
    assert labels == [("relay-mute", "Mute 1h"), ("relay-ack", "I'm on it")]
    assert all(re.fullmatch(r"[0-9]+", e["value"]) for e in buttons["elements"])  # a row id
    recorded_sent(capsys, "alerts", 1)

    body = click_body(slack.click(message.channel, message.ts, "relay-mute", ALICE))
    started = time.monotonic()
    answer = send(relay, body)
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < 3.0  # Slack's deadline
    clicked_at = time.time()
    again = send(relay, body, headers=answer.request.headers)  # the same request, replayed
    assert (again.status_code, again.json()["error"]) == (401, "replayed")

    current = wait_text(slack, message, "Muted by")
    line = notice(current)
    match = re.fullmatch(r":no_bell: Muted by <@U0ALICE42> until (\d\d):(\d\d) UTC", line)
    assert match is not None, line
    until = time.gmtime(clicked_at + 3600)
    assert abs((int(match[1]) * 60 + int(match[2])) - (until.tm_hour * 60 + until.tm_min)) <= 1
    assert "<!channel>" not in current_text(slack, message)
    assert "evil.test" not in current_text(slack, message)
    assert "tsk_4f8w" in current_text(slack, message)  # the message itself is kept

    listed = api(relay, "GET", "/api/silences").json()["silences"]
    (silence,) = listed
    assert silence["created_by"] == "U0ALICE42"
    assert silence["destination"] == "alerts"
    assert silence["match"] == {
        "source": ["anchor"],
        "type": ["task.failed"],
        "when": [{"path": "task_id", "equals": "tsk_4f8w"}],
    }
    assert 3590 <= silence["ends_at"] - silence["starts_at"] <= 3600
    _, out, _ = cli(capsys, "silence", "list")
    assert out.startswith(f"{silence['id']}  active") and "by U0ALICE42" in out

    post(relay, 2, "tsk_4f8w")  # silenced
    post(relay, 3, "tsk_other1")  # the same channel, after it: flows
    arrived(slack, "tsk_other1")
    assert len(about(slack, "tsk_4f8w")) == 1
    recorded_sent(capsys, "alerts", 2)
    _, out, _ = cli(capsys, "outbox")
    (alerts,) = [r.split() for r in out.splitlines() if r.startswith("alerts")]
    assert alerts[6] == "1"  # one silenced

    unmute = click_body(slack.click(message.channel, message.ts, "relay-unmute", ALICE))
    assert send(relay, unmute).status_code == 200
    current = wait_text(slack, message, "Unmuted by")
    assert notice(current) == ":bell: Unmuted by <@U0ALICE42>"
    assert api(relay, "GET", "/api/silences").json()["silences"] == []
    (kept,) = api(relay, "GET", "/api/silences?all=1").json()["silences"]
    assert (kept["id"], kept["state"]) == (silence["id"], "expired")
    # the same click, signed anew (another second): the silence is over already, nothing to do
    again = send(relay, unmute, at=int(time.time()) + 2)
    assert again.status_code == 200

    post(relay, 4, "tsk_4f8w")  # flows again
    deadline = time.monotonic() + 20
    while len(about(slack, "tsk_4f8w")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m.body.get("text") for m in about(slack, "tsk_4f8w")][1:] != []
    assert "evt_int_2" not in json.dumps([m.body for m in about(slack, "tsk_4f8w")])


def test_ack_click_says_who_is_on_it_and_cli_expires_a_mute(
    slack: FakeSlack,
    relay_process: type[RelayProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = f"sqlite:///{tmp_path}/relay.db"
    relay = start_with_cli(relay_process, slack, tmp_path, database, monkeypatch)
    post(relay, 1, "tsk_ack1")
    message = arrived(slack, "tsk_ack1")
    recorded_sent(capsys, "alerts", 1)

    ack = click_body(slack.click(message.channel, message.ts, "relay-ack", {"id": "W0BOB1"}))
    assert send(relay, ack, secret=OLD_SECRET).status_code == 200  # the older secret still works
    current = wait_text(slack, message, "is on it")
    assert notice(current) == ":eyes: <@W0BOB1> is on it"
    ids = [
        e["action_id"] for b in current["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert ids == ["relay-mute"]  # I'm on it was clicked; Mute is still there
    assert api(relay, "GET", "/api/silences").json()["silences"] == []

    mute = click_body(slack.click(message.channel, message.ts, "relay-mute", {"id": "W0BOB1"}))
    assert send(relay, mute).status_code == 200
    wait_text(slack, message, "Muted by <@W0BOB1>")
    (silence,) = api(relay, "GET", "/api/silences").json()["silences"]
    code, out, _ = cli(capsys, "silence", "expire", silence["id"])
    assert code == 0 and f"{silence['id']}  expired" in out
    assert api(relay, "GET", "/api/silences").json()["silences"] == []
    post(relay, 2, "tsk_ack1")  # the expired silence holds nothing
    deadline = time.monotonic() + 20
    while len(about(slack, "tsk_ack1")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(about(slack, "tsk_ack1")) == 2


def test_forged_stale_replayed_malformed_and_unknown_clicks_change_nothing(
    slack: FakeSlack,
    relay_process: type[RelayProcess],
    tmp_path: Path,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    relay = start_with_cli(relay_process, slack, tmp_path, database, monkeypatch)
    post(relay, 1, "tsk_forge")
    message = arrived(slack, "tsk_forge")
    recorded_sent(capsys, "alerts", 1)
    payload = slack.click(message.channel, message.ts, "relay-mute", ALICE)
    body = click_body(payload)
    now = int(time.time())

    def refused(answer: httpx.Response, status: int, error: str) -> None:
        assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text
        assert answer.headers["content-type"] == "application/json"

    refused(send(relay, body, secret="not-the-secret-at-all-0000000000"), 401, "bad_signature")
    refused(send(relay, body, at=now - 301), 401, "stale_request")
    refused(send(relay, body, at=now + 400), 401, "stale_request")
    refused(send(relay, body, headers={"Content-Type": "application/x-www-form-urlencoded"}),
            401, "unsigned")  # fmt: skip
    tampered = click_body({**payload, "user": {"id": "U0MALLORY"}})
    forged = slack_headers(body, now)  # signed for another body
    refused(send(relay, tampered, headers=forged), 401, "bad_signature")

    refused(send(relay, b"payload=%7Bnot+json"), 400, "malformed_interaction")
    refused(send(relay, b"nothing=here"), 400, "malformed_interaction")
    bad_user = click_body({**payload, "user": {"id": "<!everyone>"}})
    refused(send(relay, bad_user), 400, "malformed_interaction")
    other = dict(payload["actions"][0], action_id="somebody-elses-button")
    refused(send(relay, click_body({**payload, "actions": [other]})), 400, "unknown_action")
    wrong_ts = {**payload, "container": {**payload["container"], "message_ts": "1.000001"}}
    refused(send(relay, click_body(wrong_ts)), 400, "unknown_message")
    not_ours = dict(payload["actions"][0], value="999999")
    refused(send(relay, click_body({**payload, "actions": [not_ours]})), 400, "unknown_message")
    unmute = dict(payload["actions"][0], action_id="relay-unmute",
                  value=payload["actions"][0]["value"] + ":sil_0123456789abcdef")  # fmt: skip
    refused(send(relay, click_body({**payload, "actions": [unmute]})), 400, "unknown_silence")

    # the valid click, once: the replay of it with a fresh timestamp is a new, valid request
    answer = send(relay, body, at=now)
    assert answer.status_code == 200
    refused(send(relay, body, at=now), 401, "replayed")

    (silence,) = api(relay, "GET", "/api/silences?all=1").json()["silences"]
    assert silence["created_by"] == "U0ALICE42"  # only the valid click made one
    metrics = httpx.get(relay.url + "/metrics").text
    counted = dict(
        re.findall(r'^relay_slack_interactions_total\{(action="\w+",result="\w+")\} (\S+)$',
                   metrics, re.M)
    )  # fmt: skip
    assert counted == {
        'action="none",result="bad_signature"': "2.0",
        'action="none",result="stale_request"': "2.0",
        'action="none",result="unsigned"': "1.0",
        'action="none",result="malformed_interaction"': "3.0",
        'action="none",result="unknown_action"': "1.0",
        'action="mute",result="unknown_message"': "2.0",
        'action="unmute",result="unknown_silence"': "1.0",
        'action="mute",result="ok"': "1.0",
        'action="none",result="replayed"': "1.0",
    }
    time.sleep(0.5)
    updates = [u for u in slack.updates if u.ts == message.ts]
    assert len(updates) == 1  # only the valid click updated the message


def test_without_signing_secrets_the_endpoint_is_absent(
    slack: FakeSlack, relay_process: type[RelayProcess], tmp_path: Path
) -> None:
    relay = start(relay_process, slack, tmp_path, f"sqlite:///{tmp_path}/relay.db", secrets=False)
    answer = send(relay, click_body({"type": "block_actions"}))
    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")


def test_a_click_replayed_to_another_replica_is_refused(
    slack: FakeSlack,
    relay_process: type[RelayProcess],
    tmp_path: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = start(relay_process, slack, tmp_path, pg_url)
    second = start(relay_process, slack, tmp_path, pg_url)
    monkeypatch.setenv("RELAY_DATABASE_URL", pg_url)
    monkeypatch.chdir(tmp_path)
    post(first, 1, "tsk_replica")
    message = arrived(slack, "tsk_replica")
    recorded_sent(capsys, "alerts", 1)
    body = click_body(slack.click(message.channel, message.ts, "relay-ack", ALICE))
    answer = send(first, body)
    assert answer.status_code == 200
    again = send(second, body, headers=answer.request.headers)  # captured, sent to the other
    assert (again.status_code, again.json()["error"]) == (401, "replayed")
    wait_text(slack, message, "is on it")
    time.sleep(0.5)
    assert len([u for u in slack.updates if u.ts == message.ts]) == 1


def test_the_console_lists_a_silence_made_by_a_click_and_expires_it(
    slack: FakeSlack,
    relay_process: type[RelayProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = f"sqlite:///{tmp_path}/relay.db"
    relay = start_with_cli(relay_process, slack, tmp_path, database, monkeypatch)
    post(relay, 1, "tsk_cons1")
    message = arrived(slack, "tsk_cons1")
    mute = click_body(slack.click(message.channel, message.ts, "relay-mute", ALICE))
    assert send(relay, mute).status_code == 200
    wait_text(slack, message, "Muted by <@U0ALICE42>")
    (silence,) = api(relay, "GET", "/api/silences").json()["silences"]

    with httpx.Client(base_url=relay.url, timeout=10) as browser:
        (csrf,) = read(browser.get("/console/login").text).hidden("csrf")[:1]
        logged = browser.post("/console/login", data={"csrf": csrf, "token": ADMIN_TOKEN})
        assert logged.status_code == 303
        page = browser.get("/console/silences")
        row = re.search(rf'<tr id="{silence["id"]}">(.*?)</tr>', page.text, flags=re.S)
        assert row is not None and "active" in row[1] and "U0ALICE42" in row[1]
        (csrf,) = read(page.text).hidden("csrf")[:1]
        expired = browser.post(
            "/console/silences", data={"csrf": csrf, "action": "expire", "id": silence["id"]}
        )
        assert expired.status_code == 303
    assert api(relay, "GET", "/api/silences").json()["silences"] == []
    _, out, _ = cli(capsys, "silence", "list")
    assert silence["id"] not in out  # no longer active
    post(relay, 2, "tsk_cons1")  # flows again
    deadline = time.monotonic() + 20
    while len(about(slack, "tsk_cons1")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(about(slack, "tsk_cons1")) == 2
