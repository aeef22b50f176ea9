"""The logs of a running relay: at `debug` they say where an event went and why (every rule's
verdict, the template, the conversation step) and how each send went (the move, the classified
answer, its timing, the retry), with no configured secret in any line; at `info` none of that."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakeslack import FakeSlack
from harness import RelayProcess
from signing import anchor_headers

from relay.delivery.slack import web_client, webhook_client
from relay.logs import setup_logging

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = json.loads((ROOT / "relay" / "samples" / "anchor" / "task.failed.json").read_text())

ANCHOR = "anchor-log-secret-58c1e7"
SLACK = "xoxb-log-secret-7264"
ADMIN = "admin-log-secret-3390"
HOOK = "hook-log-secret-1177"

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
slack: {token: "${SLACK_BOT_TOKEN}", api_url: "${SLACK_API_URL}"}
destinations:
  alerts: {type: slack, channel: "#browser-alerts"}
  hook: {type: webhook, url: "${OPS_WEBHOOK_URL}"}
routes:
  - name: sessions
    match: {type: "session.*"}
    to: [hook]
  - name: slow
    match: {type: task.failed, when: [{path: duration_ms, gt: 600000}]}
    to: [hook]
  - name: failures
    match: {type: "*.failed"}
    to: [alerts, hook]
    thread: auto
default: {to: [alerts]}
"""


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    channels = {"browser-alerts": "C0ALERTS01", "browser-ops": "C0OPS00001"}
    with FakeSlack(channels=channels, hooks={HOOK: "browser-ops"}, token=SLACK) as fake:
        yield fake


def run(
    relay_process: type[RelayProcess], slack: FakeSlack, tmp_path: Path, level: str
) -> list[dict[str, Any]]:
    """Start relay at `level`, post one failure (Slack rate-limits its first attempt) and
    return every log line once both messages are delivered."""
    slack.reset()
    slack.script("#browser-alerts", ["ratelimited:1"])
    (tmp_path / "relay.yaml").write_text(CONFIG)
    env = {
        "ANCHOR_WEBHOOK_SECRET": ANCHOR,
        "SLACK_BOT_TOKEN": SLACK,
        "SLACK_API_URL": slack.api_url,
        "OPS_WEBHOOK_URL": slack.webhook_url(HOOK),
        "RELAY_ADMIN_TOKEN": ADMIN,
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
        "RELAY_LOG_LEVEL": level,
    }
    relay = relay_process(tmp_path / "relay.yaml", env, tmp_path).start()
    body = json.dumps({**SAMPLE, "id": "evt_log_1"}).encode()
    headers = anchor_headers(body, int(time.time()), secret=ANCHOR)
    assert httpx.post(relay.url + "/hooks/anchor", content=body, headers=headers).status_code == 202
    deadline = time.monotonic() + 20
    while len(slack.messages) < 2:
        assert time.monotonic() < deadline, relay.stderr()[-3000:]
        time.sleep(0.05)
    assert relay.terminate() in (0, -15)  # uvicorn re-raises SIGTERM once shut down
    text = relay.stderr()
    for secret in (ANCHOR, SLACK, ADMIN, HOOK):
        assert secret not in text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_debug_says_where_an_event_went_and_how_each_send_went(
    relay_process: type[RelayProcess], slack: FakeSlack, tmp_path: Path
) -> None:
    lines = run(relay_process, slack, tmp_path, "debug")
    mine = [line for line in lines if line.get("event_id") == "evt_log_1"]

    (decision,) = [line for line in mine if line["message"] == "routing decision"]
    assert decision["level"] == "debug" and decision["event_type"] == "task.failed"
    assert decision["rules"] == [
        "sessions: no match: type 'task.failed' matches none of ['session.*']",
        "slow: no match: condition failed: duration_ms gt 600000.0",
        "failures: match, stop",
    ]
    assert decision["destinations"] == ["alerts", "hook"] and decision["dropped_by"] is None

    planned = {line["destination"]: line for line in mine if line["message"] == "message planned"}
    assert planned.keys() == {"alerts", "hook"}
    alerts = planned["alerts"]
    assert alerts["route"] == "failures" and alerts["template"] == "anchor/task.failed"
    assert alerts["conversation"]["thread"] == "thread:anchor:ses_8d2c1fda"
    assert alerts["conversation"]["broadcast"] is True
    assert alerts["muted"] is False and alerts["digest"] is None

    attempts = [line for line in mine if line["message"] == "send attempt"]
    to_alerts = [a for a in attempts if a["destination"] == "alerts"]
    assert [(a["outcome"], a["reason"], a["attempt"]) for a in to_alerts] == [
        ("retry", "rate_limited", 1),
        ("sent", "ok", 2),
    ]
    limited, sent = to_alerts
    assert limited["detail"] == "ratelimited" and limited["retry_in"] >= 1.0
    assert sent["retry_in"] is None and sent["move"] == "post"
    (to_hook,) = [a for a in attempts if a["destination"] == "hook"]
    assert (to_hook["outcome"], to_hook["move"]) == ("sent", "post")
    for attempt in attempts:
        assert attempt["level"] == "debug" and attempt["event_type"] == "task.failed"
        assert isinstance(attempt["duration_ms"], float) and attempt["duration_ms"] >= 0
        assert isinstance(attempt["age_ms"], int)


def test_info_prints_no_debug_line(
    relay_process: type[RelayProcess], slack: FakeSlack, tmp_path: Path
) -> None:
    lines = run(relay_process, slack, tmp_path, "info")
    assert {line["level"] for line in lines} <= {"info", "warning", "error"}
    assert any(line["message"] == "delivered" for line in lines)  # logging did run


@pytest.fixture
def configured_logging() -> Iterator[None]:
    """relay's logging set up in this process at debug, and put back afterwards."""
    root = logging.getLogger()
    before = (root.handlers[:], root.level, logging.getLogger("slack_sdk").level)
    setup_logging("debug")
    try:
        yield
    finally:
        root.handlers[:], root.level = before[0], before[1]
        logging.getLogger("slack_sdk").setLevel(before[2])


def test_slack_clients_do_not_format_requests_for_debug_logs(configured_logging: None) -> None:
    # slack-sdk formats each request's URL (a webhook URL is a secret), body and headers for its
    # debug log whenever its client's logger's own level is at most DEBUG, even though the line is
    # then dropped: relay's clients log through the logger its logging holds at WARNING.
    for client in (
        webhook_client("https://hooks.slack.com/services/T000/B000/test-value"),
        web_client("xoxb-test-value"),
    ):
        logger = getattr(client, "logger", None) or client._logger
        assert logger.level > logging.DEBUG
        assert not logger.isEnabledFor(logging.DEBUG)
