"""Operating relay as a process: Prometheus metrics, hot reload (HTTP and SIGHUP) with an
invalid config rejected while the old one keeps serving, and the admin token's gate."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakeslack import FakeSlack
from harness import RelayProcess
from prometheus_client.parser import text_string_to_metric_families
from signing import ANCHOR_SECRET, SLACK_TOKEN, anchor_headers

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = (ROOT / "relay" / "samples" / "anchor" / "task.completed.json").read_bytes()
ADMIN = "test-admin-token"
ALERTS, EVENTS = "C0ALERTS01", "C0EVENTS01"

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
slack: {token: "${SLACK_BOT_TOKEN}", api_url: "${SLACK_API_URL}"}
destinations:
  events: {type: slack, channel: "#browser-events"}
  alerts: {type: slack, channel: "#browser-alerts"}
default: {to: [events]}
"""


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def start(
    relay_process: type[RelayProcess],
    slack: FakeSlack,
    tmp_path: Path,
    admin: str | None,
    env: dict[str, str] | None = None,
) -> RelayProcess:
    """relay on CONFIG with the fake Slack (`env`: more of relay's environment)."""
    slack.reset()
    (tmp_path / "relay.yaml").write_text(CONFIG)
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
        **(env or {}),
    }
    if admin:
        env["RELAY_ADMIN_TOKEN"] = admin
    return relay_process(tmp_path / "relay.yaml", env, tmp_path).start()


def post(relay: RelayProcess, body: bytes, *, path: str = "/hooks/anchor") -> httpx.Response:
    headers = anchor_headers(body, int(time.time()))
    return httpx.post(relay.url + path, content=body, headers=headers)


def event(event_id: str) -> bytes:
    return json.dumps({**json.loads(SAMPLE), "id": event_id}).encode()


def samples(relay: RelayProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(relay.url + "/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def wait_for(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


# the worker's figures and logs come from its own process there
@pytest.mark.parametrize("delivery", ["off", "on"], ids=["in process", "delivery process"])
def test_metrics_count_every_stage(
    relay_process: type[RelayProcess], slack: FakeSlack, tmp_path: Path, delivery: str
) -> None:
    relay = start(relay_process, slack, tmp_path, None, {"RELAY_DELIVERY_PROCESS": delivery})
    assert post(relay, event("m1")).status_code == 202
    assert post(relay, event("m1")).status_code == 200  # duplicate
    forged = httpx.post(
        relay.url + "/hooks/anchor",
        content=event("m2"),
        headers=anchor_headers(event("m2"), int(time.time()), secret="0" * 64),
    )
    assert forged.status_code == 401
    assert post(relay, event("m3"), path="/hooks/no-such-source").status_code == 404
    wait_for(lambda: len(slack.messages) == 1)

    def value(name: str, **labels: str) -> float:
        return samples(relay).get((name, tuple(sorted(labels.items()))), 0.0)

    wait_for(lambda: value("relay_deliveries_total", destination="events", outcome="sent",
                           reason="ok") == 1)  # fmt: skip
    assert value("relay_requests_received_total", source="anchor") == 3
    assert value("relay_requests_received_total", source="_unknown") == 1
    assert value("relay_requests_rejected_total", source="anchor", reason="unauthorized") == 1
    assert value("relay_requests_rejected_total", source="_unknown", reason="unknown_source") == 1
    assert value("relay_events_accepted_total", source="anchor", type="task.completed") == 1
    assert value("relay_events_duplicate_total", source="anchor") == 1
    assert value("relay_messages_routed_total", route="default", destination="events") == 1
    assert value("relay_messages_rendered_total", destination="events") == 1
    assert value("relay_template_fallbacks_total", destination="events") == 0
    assert value("relay_delivery_latency_seconds_count", destination="events") == 1
    assert value("relay_outbox_messages", destination="events", status="pending") == 0
    assert value("relay_outbox_oldest_pending_age_seconds", destination="events") == 0
    assert value("relay_config_generation") == 1
    text = httpx.get(relay.url + "/metrics").text
    assert "no-such-source" not in text  # unknown names never become label values

    # the structured logs tell the event's whole story under its id
    lines = [json.loads(line) for line in relay.stderr().splitlines() if line.startswith("{")]
    story = [(e["message"], e.get("destination")) for e in lines if e.get("event_id") == "m1"]
    assert ("event accepted", None) in story
    assert ("duplicate event ignored", None) in story
    assert ("delivered", "events") in story
    assert all(set(e) >= {"time", "level", "logger", "message"} for e in lines)


def test_reload_over_http_and_sighup_and_a_bad_config_keeps_the_old_one(
    relay_process: type[RelayProcess], slack: FakeSlack, tmp_path: Path
) -> None:
    relay = start(relay_process, slack, tmp_path, ADMIN)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    first = httpx.get(relay.url + "/readyz").json()
    assert first["generation"] == 1

    assert httpx.post(relay.url + "/admin/reload").status_code == 401
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG + "routes:\n  - {match: {type: task.*}, to: [alerts]}\n")
    answer = httpx.post(relay.url + "/admin/reload", headers=auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["generation"] == 2 and answer.json()["config"] != first["config"]
    second = answer.json()["config"]
    assert post(relay, event("r1")).status_code == 202
    wait_for(lambda: [m.channel for m in slack.messages] == [ALERTS])  # the new route

    config.write_text(CONFIG + "routes:\n  - {match: {type: task.*}, to: [alrets]}\n")
    answer = httpx.post(relay.url + "/admin/reload", headers=auth)
    assert answer.status_code == 422
    assert answer.json() == {
        "error": "invalid_config",
        "detail": "routes[0].to[0]: unknown destination (known: alerts, events)",
    }
    ready = httpx.get(relay.url + "/readyz").json()
    assert ready["generation"] == 2 and ready["config"] == second
    assert post(relay, event("r2")).status_code == 202  # still serving the previous config
    wait_for(lambda: [m.channel for m in slack.messages] == [ALERTS, ALERTS])
    assert "new config rejected" in relay.stderr() + relay.stdout()

    config.write_text(CONFIG)
    assert relay.proc is not None
    relay.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: httpx.get(relay.url + "/readyz").json()["generation"] == 3)
    assert post(relay, event("r3")).status_code == 202
    wait_for(lambda: [m.channel for m in slack.messages] == [ALERTS, ALERTS, EVENTS])


def test_admin_endpoints_are_off_without_a_token(
    relay_process: type[RelayProcess], slack: FakeSlack, tmp_path: Path
) -> None:
    relay = start(relay_process, slack, tmp_path, None)
    answer = httpx.post(relay.url + "/admin/reload", headers={"Authorization": "Bearer x"})
    assert answer.status_code == 404
    assert answer.json()["error"] == "admin_disabled"
    assert httpx.post(relay.url + "/runs/tabstack", json={}).status_code == 404


def test_a_watched_config_reloads_when_its_file_changes(
    relay_process: type[RelayProcess], slack: FakeSlack, tmp_path: Path
) -> None:
    relay = start(relay_process, slack, tmp_path, None)
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG + "server: {watch: 0.2s}\n")
    assert relay.proc is not None
    relay.proc.send_signal(signal.SIGHUP)  # turn watching on
    wait_for(lambda: httpx.get(relay.url + "/readyz").json()["generation"] == 2)

    config.write_text(
        CONFIG + "server: {watch: 0.2s}\nroutes:\n  - {match: {type: task.*}, to: [alerts]}\n"
    )
    wait_for(lambda: httpx.get(relay.url + "/readyz").json()["generation"] == 3)
    assert post(relay, event("w1")).status_code == 202
    wait_for(lambda: [m.channel for m in slack.messages] == [ALERTS])  # the new route, no signal

    config.write_text(CONFIG + "server: {watch: 0.2s}\nroutes: [{to: [nowhere]}]\n")
    wait_for(lambda: "new config rejected" in relay.stderr())
    time.sleep(1.0)  # several looks later: tried once, the old config still serves
    assert relay.stderr().count("new config rejected") == 1
    assert httpx.get(relay.url + "/readyz").json()["generation"] == 3
