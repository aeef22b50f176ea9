"""Silences through a running relay (`relay serve` as a process, the fake Slack over HTTP), on
SQLite and PostgreSQL: `relay silence add|list|expire` against the database the relay serves
from, the JSON API behind the admin token, and two replicas that honour each other's silences.

A silenced event is proved silenced, not merely slow: an event posted after it to the same
channel arrives, and the silenced one is in the outbox as `silenced`, never in Slack."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakeslack import FakeSlack, Message
from harness import RelayProcess, post_anchor
from signing import ADMIN_TOKEN, ANCHOR_SECRET, SLACK_TOKEN

from relay.cli import main

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
slack: {token: "${SLACK_BOT_TOKEN}", api_url: "${SLACK_API_URL}"}
destinations:
  alerts: {type: slack, channel: "#browser-alerts"}
  events: {type: slack, channel: "#browser-events"}
routes:
  - {match: {type: task.failed}, to: [alerts]}
default: {to: [events]}
pacing: {rate: 20, burst: 10}
"""
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def start(
    relay_process: type[RelayProcess],
    slack: FakeSlack,
    tmp_path: Path,
    database: str,
    admin: bool = True,
) -> RelayProcess:
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG)
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_DATABASE_URL": database,
        "RELAY_ADMIN_TOKEN": ADMIN_TOKEN if admin else "",
    }
    return relay_process(config, env, tmp_path).start()


def post(relay: RelayProcess, n: int, task: str, kind: str = "task.failed") -> None:
    body = {
        "id": f"evt_sil_{n}",
        "type": kind,
        "created": "2026-05-24T12:18:05.123Z",
        "data": {"task_id": task, "error": {"type": "Timeout", "message": f"timed out ({task})"}},
    }
    answer = post_anchor(relay, json.dumps(body).encode())
    assert answer.status_code == 202, answer.text


def arrived(slack: FakeSlack, task: str, timeout: float = 20.0) -> list[Message]:
    """Wait until a message naming `task` is in Slack; every message naming it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in slack.messages if task in json.dumps(m.body)]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no message about {task} arrived")


def about(slack: FakeSlack, task: str) -> list[Message]:
    return [m for m in slack.messages if task in json.dumps(m.body)]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_round_trip_silences_then_expires(
    slack: FakeSlack,
    relay_process: type[RelayProcess],
    tmp_path: Path,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    relay = start(relay_process, slack, tmp_path, database)
    monkeypatch.setenv("RELAY_DATABASE_URL", database)
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(
        capsys, "silence", "add", "source=anchor", "type=task.failed", "data.task_id=tsk_4f8w",
        "--for", "2h", "--comment", "known outage", "--by", "alice",
    )  # fmt: skip
    assert code == 0
    silence_id = out.strip()
    assert silence_id.startswith("sil_")

    post(relay, 1, "tsk_4f8w")  # silenced
    post(relay, 2, "tsk_other1")  # the same channel, after it: flows
    arrived(slack, "tsk_other1")
    assert about(slack, "tsk_4f8w") == []
    deadline = time.monotonic() + 10
    while True:  # the sent message is recorded as sent right after Slack's answer
        code, out, _ = cli(capsys, "outbox")
        header, *rows = out.splitlines()
        (alerts,) = [r.split() for r in rows if r.startswith("alerts")]
        if alerts[4] == "1" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert header.split()[6] == "silenced"
    assert (alerts[4], alerts[6]) == ("1", "1")  # one sent, one silenced
    metrics = httpx.get(relay.url + "/metrics").text
    assert 'relay_messages_silenced_total{destination="alerts"} 1.0' in metrics

    code, out, _ = cli(capsys, "silence", "list")
    assert code == 0
    (line,) = out.splitlines()
    assert line.startswith(f"{silence_id}  active") and "by alice" in line
    assert "source=anchor type=task.failed data.task_id equals 'tsk_4f8w'" in line
    assert line.endswith("# known outage")
    code, out, _ = cli(capsys, "silence", "list", "--json")
    listed = json.loads(out)
    assert (listed["id"], listed["created_by"], listed["state"]) == (silence_id, "alice", "active")

    code, out, _ = cli(capsys, "silence", "expire", silence_id)
    assert code == 0 and f"{silence_id}  expired" in out
    assert cli(capsys, "silence", "list")[1] == ""
    assert silence_id in cli(capsys, "silence", "list", "--all")[1]
    code, _, err = cli(capsys, "silence", "expire", "sil_unknown")
    assert (code, err) == (1, "error: no silence 'sil_unknown'\n")
    code, _, err = cli(capsys, "silence", "add", "colour=red", "--for", "1h")
    assert code == 1
    assert (
        err == "error: matchers[0]: unknown matcher 'colour' (expected source, type or data.PATH)\n"
    )

    post(relay, 3, "tsk_4f8w")  # the silence expired: the same task flows again
    (message,) = arrived(slack, "tsk_4f8w")
    assert "evt_sil_1" not in json.dumps(message.body)  # the silenced one is never sent later
    time.sleep(0.5)
    assert len(about(slack, "tsk_4f8w")) == 1


def api(relay: RelayProcess, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    headers = kw.pop("headers", AUTH)
    return httpx.request(method, relay.url + path, json=body, headers=headers, timeout=10, **kw)


def test_api_round_trip_with_auth_preview_and_field_errors(
    slack: FakeSlack, relay_process: type[RelayProcess], tmp_path: Path, database: str
) -> None:
    relay = start(relay_process, slack, tmp_path, database)
    post(relay, 1, "tsk_before")  # delivered before any silence: what the preview finds
    arrived(slack, "tsk_before")

    assert api(relay, "GET", "/api/silences", headers={}).status_code == 401
    wrong = api(relay, "GET", "/api/silences", headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "unauthorized")

    bad = api(relay, "POST", "/api/silences", {"matchers": ["data.x=~("], "duration": "1h"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "invalid_silence"
    assert bad.json()["detail"].startswith("match.when[0]: matches: '(' is not a valid regex")
    unknown = api(
        relay, "POST", "/api/silences", {"matchers": ["type=x"], "destination": "opps", "for": 1}
    )
    assert (unknown.status_code, unknown.json()["detail"]) == (
        422, "for: Extra inputs are not permitted"
    )  # fmt: skip
    elsewhere = api(
        relay,
        "POST",
        "/api/silences",
        {"matchers": ["type=x"], "destination": "opps", "duration": 60},
    )
    assert elsewhere.json()["detail"] == (
        "destination: unknown destination 'opps' (configured: alerts, events)"
    )
    notjson = httpx.post(
        relay.url + "/api/silences",
        content=b"{",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert (notjson.status_code, sorted(notjson.json())) == (400, ["detail", "error"])

    wanted = {"match": {"type": "task.failed", "when": [{"path": "task_id", "equals": "tsk_x"}]}}
    preview = api(relay, "POST", "/api/silences/preview", wanted)
    assert preview.status_code == 200
    (row,) = preview.json()["messages"]
    assert (row["event_id"], row["destination"], row["status"]) == ("evt_sil_1", "alerts", "sent")
    assert preview.json()["unchecked"] == ["task_id equals 'tsk_x'"]
    nothing = api(relay, "POST", "/api/silences/preview", {"matchers": ["type=session.*"]})
    assert nothing.json() == {"messages": [], "unchecked": []}

    created = api(
        relay, "POST", "/api/silences",
        {**wanted, "duration": "30m", "comment": "flaky", "created_by": "bob"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    silence = created.json()["silence"]
    assert silence["state"] == "active" and silence["created_by"] == "bob"
    assert silence["ends_at"] - silence["starts_at"] == 1800

    post(relay, 2, "tsk_x")
    post(relay, 3, "tsk_after")
    arrived(slack, "tsk_after")
    assert about(slack, "tsk_x") == []

    listed = api(relay, "GET", "/api/silences").json()["silences"]
    assert [s["id"] for s in listed] == [silence["id"]]
    expired = api(relay, "POST", f"/api/silences/{silence['id']}/expire")
    assert (expired.status_code, expired.json()["silence"]["state"]) == (200, "expired")
    assert api(relay, "GET", "/api/silences").json() == {"silences": []}
    assert [s["id"] for s in api(relay, "GET", "/api/silences?all=1").json()["silences"]] == [
        silence["id"]
    ]
    gone = api(relay, "DELETE", "/api/silences/sil_nothing")
    assert (gone.status_code, gone.json()["error"]) == (404, "unknown_silence")
    post(relay, 4, "tsk_x")
    arrived(slack, "tsk_x")


def test_the_api_is_absent_without_an_admin_token(
    slack: FakeSlack, relay_process: type[RelayProcess], tmp_path: Path
) -> None:
    relay = start(relay_process, slack, tmp_path, f"sqlite:///{tmp_path}/relay.db", admin=False)
    for method, path in (("GET", "/api/silences"), ("POST", "/api/silences/sil_x/expire")):
        answer = api(relay, method, path)
        assert (answer.status_code, answer.json()["error"]) == (404, "admin_disabled")


def test_a_silence_created_on_one_replica_is_honoured_by_another(
    slack: FakeSlack, relay_process: type[RelayProcess], tmp_path: Path, pg_url: str
) -> None:
    one = start(relay_process, slack, tmp_path, pg_url)
    two = start(relay_process, slack, tmp_path, pg_url)
    created = api(
        one, "POST", "/api/silences", {"matchers": ["data.task_id=tsk_4f8w"], "duration": "1h"}
    )
    assert created.status_code == 201
    silence_id = created.json()["silence"]["id"]
    post(two, 1, "tsk_4f8w")
    post(two, 2, "tsk_other2")
    post(one, 3, "tsk_other3")
    arrived(slack, "tsk_other2")
    arrived(slack, "tsk_other3")
    assert about(slack, "tsk_4f8w") == []
    # expired through the other replica: the first one's intake flows again
    assert api(two, "POST", f"/api/silences/{silence_id}/expire").status_code == 200
    post(one, 4, "tsk_4f8w")
    (message,) = arrived(slack, "tsk_4f8w")
    assert "evt_sil_1" not in json.dumps(message.body)
