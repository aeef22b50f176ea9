"""History and its JSON API through `relay serve` as a real process, signed Anchor events over
HTTP and the fake Slack, on SQLite and PostgreSQL: what each event became (envelope, routing
trace, message payloads, every attempt: a 429 and a 500 then success, a dead letter), the
events list with its filters and pages, one event, the overview, dead letters replayed and
dropped, resend and reroute, the admin token, and hostile event strings given back as plain
JSON strings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakeslack import FakeSlack
from harness import RelayProcess, post_anchor, sample
from pgschema import fresh_schema
from signing import ADMIN_TOKEN, ANCHOR_SECRET, SLACK_TOKEN

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
slack: {token: "${SLACK_BOT_TOKEN}", api_url: "${SLACK_API_URL}"}
destinations:
  alerts: {type: slack, channel: "#browser-alerts"}
  events: {type: slack, channel: "#browser-events"}
  general: {type: slack, channel: "#general"}
routes:
  - name: noise
    match: {source: anchor, type: session.recording.ready}
    drop: true
  - name: failures
    match: {source: anchor, type: task.failed}
    to: [alerts]
  - name: done
    match: {source: anchor, type: task.completed}
    to: [events]
  - name: cancelled
    match: {source: anchor, type: task.cancelled}
    to: [general]
pacing: {rate: 50, burst: 50}
"""

HOSTILE_TEXT = '<script>alert(1)</script> "><img src=x onerror=alert(1)> @channel <!here>'
HOSTILE_URL = "javascript:alert(document.cookie)"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def body_of(name: str, event_id: str, **changes: Any) -> bytes:
    event = json.loads(sample("anchor", name).read_text())
    event["id"] = event_id
    event.update(changes)
    return json.dumps(event).encode()


class Api:
    def __init__(self, relay: RelayProcess) -> None:
        self.url = relay.url

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(self.url + path, params=params, headers=AUTH, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        return answer.json()

    def post(self, path: str, body: Any, status: int = 200) -> Any:
        answer = httpx.post(self.url + path, json=body, headers=AUTH, timeout=10)
        assert answer.status_code == status, answer.text
        return answer.json()

    def wait(self, want: dict[str, str], timeout: float = 30.0) -> dict[str, Any]:
        """Wait until each event id has its outcome; the events by id."""
        deadline = time.monotonic() + timeout
        found: dict[str, Any] = {}
        while time.monotonic() < deadline:
            found = {e["event_id"]: e for e in self.get("/api/events", limit=100)["events"]}
            if all(found.get(k, {}).get("outcome") == v for k, v in want.items()):
                return found
            time.sleep(0.1)
        raise AssertionError(f"outcomes {want} not reached: {found}")


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def relay(
    request: pytest.FixtureRequest, slack: FakeSlack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RelayProcess]:
    tmp = tmp_path_factory.mktemp(request.param)
    config = tmp / "relay.yaml"
    config.write_text(CONFIG)
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    with fresh_schema() if request.param == "postgres" else _nothing() as url:
        env["RELAY_DATABASE_URL"] = url or f"sqlite:///{tmp}/relay.db"
        process = RelayProcess(config, env, tmp).start()
        try:
            yield process
        finally:
            process.kill()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        return None


@pytest.fixture(scope="module")
def story(relay: RelayProcess, slack: FakeSlack) -> dict[str, Any]:
    """Five events: one retried twice then delivered, one delivered, one dropped, one dead (its
    strings hostile), one delivered to #browser-events an hour earlier (by its posting order)."""
    slack.reset()
    slack.script("#browser-alerts", ["ratelimited:1", "server_error"])
    slack.script("#general", ["channel_not_found"])
    posts = [
        body_of("task.failed.json", "evt_failed"),
        body_of("task.completed.json", "evt_done"),
        body_of("session.recording.ready.json", "evt_noise"),
        body_of(
            "task.cancelled.json",
            "evt_hostile",
            text=HOSTILE_TEXT,
            data={"task_id": HOSTILE_TEXT, "session_dashboard_url": HOSTILE_URL},
        ),
    ]
    started = time.time()
    for body in posts:
        assert post_anchor(relay, body).status_code == 202
    # a refused request leaves nothing in history (the list below holds the four alone)
    forged = body_of("task.failed.json", "evt_forged")
    headers = {"Content-Type": "application/json", "Anchor-Signature": "t=1,v1=00"}
    assert (
        httpx.post(relay.url + "/hooks/anchor", content=forged, headers=headers).status_code == 401
    )
    api = Api(relay)
    found = api.wait(
        {
            "evt_failed": "delivered",
            "evt_done": "delivered",
            "evt_noise": "dropped",
            "evt_hostile": "dead",
        }
    )
    return {"api": api, "events": found, "started": started, "posts": posts, "relay": relay}


def test_history_keeps_the_envelope_routing_payload_and_every_attempt(
    story: dict[str, Any], slack: FakeSlack
) -> None:
    api: Api = story["api"]
    failed = api.get(f"/api/events/{story['events']['evt_failed']['id']}")
    assert failed["envelope"] == json.loads(story["posts"][0])
    assert failed["event"]["destinations"] == ["alerts"]
    assert failed["event"]["received_at"] <= failed["event"]["routed_at"] <= time.time()
    routing = failed["routing"]
    assert routing["explanation"][0] == "anchor task.failed (evt_failed)"
    assert [r["verdict"] for r in routing["rules"]] == [
        "no match: type 'task.failed' matches none of ['session.recording.ready']",
        "match, stop",
    ]
    (message,) = failed["messages"]
    assert (message["destination"], message["route"], message["status"]) == (
        "alerts", "failures", "sent")  # fmt: skip
    # the native payload: what Slack was sent, as the fake received it
    posted = [m for m in slack.messages if m.channel == "C0ALERTS01"]
    assert len(posted) == 1
    assert message["payload"]["blocks"] == posted[0].blocks
    assert message["in_chat"] == {"channel_id": "C0ALERTS01", "ts": posted[0].ts}
    timeline = message["attempts_timeline"]
    assert [(a["status"], a["reason"]) for a in timeline] == [
        ("retrying", "rate_limited"), ("retrying", "server_error"), ("sent", "ok")]  # fmt: skip
    assert "429" in timeline[0]["error"] or "ratelimited" in timeline[0]["error"]
    assert "500" in timeline[1]["error"]
    assert timeline[0]["next_attempt_at"] >= timeline[0]["at"] + 1.0  # Retry-After: 1
    assert all(a["took"] is not None and 0 <= a["took"] < 10 for a in timeline)
    assert timeline[2]["next_attempt_at"] is None

    dead = api.get(f"/api/events/{story['events']['evt_hostile']['id']}")
    (message,) = dead["messages"]
    assert (message["status"], message["last_reason"]) == ("dead", "channel")
    assert [a["error"] for a in message["attempts_timeline"]] == ["channel_not_found"]
    noise = api.get(f"/api/events/{story['events']['evt_noise']['id']}")
    assert noise["messages"] == [] and noise["routing"]["dropped_by"] == "noise"
    # no secret of the config in any answer
    answers = json.dumps([failed, dead, noise, api.get("/api/events"), api.get("/api/overview")])
    for secret in (SLACK_TOKEN, ANCHOR_SECRET, ADMIN_TOKEN, slack.api_url):
        assert secret not in answers


def test_hostile_event_strings_come_back_as_plain_json_strings(story: dict[str, Any]) -> None:
    api: Api = story["api"]
    answer = httpx.get(f"{api.url}/api/events/{story['events']['evt_hostile']['id']}", headers=AUTH)
    assert answer.headers["content-type"] == "application/json"
    shown = answer.json()
    assert shown["event"]["text"] == HOSTILE_TEXT
    assert shown["envelope"]["data"] == {
        "task_id": HOSTILE_TEXT,
        "session_dashboard_url": HOSTILE_URL,
    }
    # nothing in the answer turns an event's string into a link of its own
    assert shown["messages"][0]["in_chat"] is None
    listed = api.get("/api/events", q="evt_hostile")["events"]
    assert [e["text"] for e in listed] == [HOSTILE_TEXT]


def test_the_events_list_filters_and_pages(story: dict[str, Any]) -> None:
    api: Api = story["api"]

    def ids(**params: Any) -> list[str]:
        return [e["event_id"] for e in api.get("/api/events", **params)["events"]]

    # newest first; the refused request is not there
    assert ids() == ["evt_hostile", "evt_noise", "evt_done", "evt_failed"]
    assert ids(type="task.*") == ["evt_hostile", "evt_done", "evt_failed"]
    assert ids(type="session.recording.?eady") == ["evt_noise"]
    assert ids(outcome="dead") == ["evt_hostile"]
    assert ids(outcome="dropped") == ["evt_noise"]
    assert ids(outcome="delivered") == ["evt_done", "evt_failed"]
    assert ids(destination="alerts") == ["evt_failed"]
    assert ids(source="anchor", destination="events") == ["evt_done"]
    assert ids(source="deck") == []
    assert ids(q="evt_done") == ["evt_done"]
    assert ids(q="<script>") == ["evt_hostile"]  # text
    assert ids(since=story["started"] - 60, until=time.time() + 60)[:1] == ["evt_hostile"]
    assert ids(until=story["started"] - 60) == []
    assert len(ids(since="2000-01-01T00:00:00Z")) == 4
    assert ids(until="2000-01-01T00:00:00") == []  # ISO 8601, UTC without a zone
    # keyset pages of two, joined, are the whole list, each event once
    seen: list[str] = []
    page = api.get("/api/events", limit=2)
    while True:
        seen += [e["event_id"] for e in page["events"]]
        if page["next"] is None:
            break
        page = api.get("/api/events", limit=2, cursor=page["next"])
    assert seen == ["evt_hostile", "evt_noise", "evt_done", "evt_failed"]
    # a filtered list pages too
    first = api.get("/api/events", limit=1, type="task.*")
    second = api.get("/api/events", limit=1, type="task.*", cursor=first["next"])
    assert [first["events"][0]["event_id"], second["events"][0]["event_id"]] == [
        "evt_hostile", "evt_done"]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"outcome": "lost"}, "outcome: expected one of"),
        ({"limit": "0"}, "limit: expected a whole number from 1 to 500"),
        ({"cursor": "nope"}, "cursor: not a cursor relay gave"),
        ({"since": "yesterday"}, "since: expected epoch seconds or an ISO 8601 time"),
        ({"colour": "red"}, "colour: not a filter"),
    ],
)
def test_a_bad_parameter_is_named(
    story: dict[str, Any], params: dict[str, str], detail: str
) -> None:
    answer = httpx.get(story["api"].url + "/api/events", params=params, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_query"
    assert answer.json()["detail"].startswith(detail)


def test_overview_counts_latency_and_backlog(story: dict[str, Any]) -> None:
    o = story["api"].get("/api/overview")
    for window in ("last_24h", "last_7d"):
        counts = o[window]["by_source"]["anchor"]
        assert counts == {"delivered": 2, "dead": 1, "dropped": 1}
        assert sum(h["events"] for h in o[window]["per_hour"]) >= 4
        latency = o[window]["latency"]
        assert 0 < latency["p50"] <= latency["p95"] < 60
        assert o[window]["failing"]["destinations"][0]["destination"] == "general"
        assert {t["type"] for t in o[window]["busiest"]["types"]} >= {
            "task.failed",
            "task.completed",
        }
    backlog = {b["destination"]: b for b in o["backlog"]}
    assert set(backlog) == {"alerts", "events", "general"}
    assert backlog["alerts"]["sent"] >= 1
    assert "token" not in json.dumps(o).lower()


def test_dead_letters_are_listed_counted_replayed_and_dropped(
    story: dict[str, Any], slack: FakeSlack
) -> None:
    api: Api = story["api"]
    (letter,) = api.get("/api/dead")["dead"]
    assert (letter["destination"], letter["reason"], letter["error"]) == (
        "general", "channel", "channel_not_found")  # fmt: skip
    assert letter["event"]["event_id"] == "evt_hostile"
    assert api.get("/api/dead", destination="alerts")["dead"] == []
    # how many first, then the replay: the fake Slack receives it
    dry = api.post("/api/dead/replay", {"filter": {"type": "task.*"}, "dry_run": True})
    assert dry == {"action": "replay", "dry_run": True, "count": 1}
    assert api.post("/api/dead/replay", {"filter": {"source": "deck"}})["count"] == 0
    assert api.post("/api/dead/replay", {"ids": [letter["id"]]})["count"] == 1
    api.wait({"evt_hostile": "delivered"})
    assert any(m.channel == "C0GENERAL1" for m in slack.messages)
    assert api.get("/api/dead")["dead"] == []
    # a second death, dropped by filter
    slack.script("#general", ["channel_not_found"])
    assert (
        post_anchor(story["relay"], body_of("task.cancelled.json", "evt_dies")).status_code == 202
    )
    api.wait({"evt_dies": "dead"})
    assert api.post("/api/dead/drop", {"filter": {}, "dry_run": True})["count"] == 1
    assert api.post("/api/dead/drop", {"filter": {"q": "evt_dies"}})["count"] == 1
    assert api.get("/api/dead")["dead"] == []
    assert api.get("/api/events", q="evt_dies")["events"][0]["outcome"] == "dead"
    answer = httpx.post(api.url + "/api/dead/drop", json={"ids": "all"}, headers=AUTH)
    assert answer.status_code == 400 and answer.json()["error"] == "bad_query"


def test_resend_and_reroute_queue_new_messages(story: dict[str, Any], slack: FakeSlack) -> None:
    api: Api = story["api"]
    seq = story["events"]["evt_done"]["id"]
    before = len([m for m in slack.messages if m.channel == "C0ALERTS01"])
    queued = api.post(f"/api/events/{seq}/resend", {"destination": "alerts"}, status=202)
    assert queued == {"queued": 1, "destinations": ["alerts"]}
    deadline = time.monotonic() + 15
    while len([m for m in slack.messages if m.channel == "C0ALERTS01"]) == before:
        assert time.monotonic() < deadline, "the resent message never arrived"
        time.sleep(0.1)
    rerouted = api.post(f"/api/events/{seq}/reroute", {}, status=202)
    assert rerouted["destinations"] == ["events"]
    assert rerouted["explanation"][-1].startswith("=> events: route done")
    shown = api.get(f"/api/events/{seq}")
    assert [m["route"] for m in shown["messages"]] == ["done", "resend", "done"]
    answer = httpx.post(
        f"{api.url}/api/events/{seq}/resend", json={"destination": "nowhere"}, headers=AUTH
    )
    assert answer.status_code == 400
    missing = httpx.post(f"{api.url}/api/events/999999/reroute", headers=AUTH)
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")


@pytest.mark.parametrize(
    "path",
    ["/api/events", "/api/events/1", "/api/overview", "/api/dead"],
)
def test_the_api_wants_the_admin_token(story: dict[str, Any], path: str) -> None:
    url = story["api"].url + path
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN}):
        answer = httpx.get(url, headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {"error": "unauthorized", "detail": "missing or wrong bearer token"}
    assert httpx.get(url, headers=AUTH).status_code in (200, 404)
    refused = httpx.post(story["api"].url + "/api/dead/replay", json={"filter": {}})
    assert refused.status_code == 401


def test_without_an_admin_token_the_api_is_off(
    slack: FakeSlack, relay_process: type[RelayProcess], tmp_path: Path
) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG)
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_ADMIN_TOKEN": "",
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
    }
    relay = relay_process(config, env, tmp_path).start()
    for path in ("/api/events", "/api/overview", "/api/dead"):
        answer = httpx.get(relay.url + path, headers=AUTH)
        assert answer.status_code == 404
        assert answer.json()["error"] == "admin_disabled"
