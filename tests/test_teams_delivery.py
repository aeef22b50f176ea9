"""Teams delivery against the fake Teams over HTTP: the sender's one attempt and its
classification of every answer a Workflows trigger gives, the degradations (a reply or an
update is posted flat, as the new state), and the worker end to end with a conversation on
SQLite and PostgreSQL: flat posts, Retry-After honoured, a turned-off flow a dead letter."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from faketeams import FakeTeams
from harness import Rig, free_port, with_id
from harness import event_body as sample

from relay.config import parse_config
from relay.delivery.destinations import Clients, build_senders, describe, kind, pace_keys, paces
from relay.delivery.policy import Pacing
from relay.delivery.teams import TeamsSender
from relay.messages import Card, Field
from relay.records import DeliveryResult, MessageRef, Outcome, Outgoing, Reason, Status

CARD = Card(status="failure", title="Task failed", fields=(Field("Task", "`tsk_1`"),))
REF = MessageRef("C1", "1700000000.000100", None, 1, 0.0, 0.0)


@pytest.fixture(scope="module")
def teams() -> Iterator[FakeTeams]:
    with FakeTeams(flows={"alerts": "sig-alerts", "ops": "sig-ops"}, hang_seconds=5) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def sender(teams: FakeTeams, http: httpx.AsyncClient | None, url: str | None = None) -> TeamsSender:
    return TeamsSender(http, url or teams.workflow_url("alerts"), timeout=2.0)


def assert_no_secret(result: DeliveryResult, teams: FakeTeams) -> None:
    shown = json.dumps([result.detail, result.channel_id, result.ts])
    assert "sig-" not in shown and "127.0.0.1" not in shown and "workflows" not in shown


# ---------------------------------------------------------------- the sender


@pytest.mark.parametrize("style", ["logic", "powerplatform"])
async def test_an_accepted_card_is_sent_without_a_message_id(
    teams: FakeTeams, http: httpx.AsyncClient, style: str
) -> None:
    teams.reset()
    result = await sender(teams, http, teams.workflow_url("alerts", style=style)).send(
        Outgoing(CARD)
    )
    assert result == DeliveryResult(Outcome.SENT, Reason.OK)  # no channel, no ts to thread on
    (post,) = teams.posts
    assert post.card["body"][0]["items"][0]["inlines"][0]["text"] == "\u274c Task failed"
    (request,) = teams.requests
    assert (request.status, request.headers["content-type"]) == (202, "application/json")


async def test_without_a_shared_client_each_attempt_opens_its_own(teams: FakeTeams) -> None:
    teams.reset()
    result = await sender(teams, None).send(Outgoing(CARD))
    assert result.outcome is Outcome.SENT and len(teams.posts) == 1


async def test_a_reply_or_an_update_is_posted_flat_as_its_new_state(
    teams: FakeTeams, http: httpx.AsyncClient
) -> None:
    teams.reset()
    resolved = Card(status="success", title="Intervention resolved")
    post = sender(teams, http)
    replied = await post.send(Outgoing(CARD, reply_to=REF, broadcast=True, thread="ses_1"))
    updated = await post.send(Outgoing(resolved, update=REF, thread="ses_1"))
    assert replied.outcome is Outcome.SENT and updated.outcome is Outcome.SENT
    assert updated.ts is None  # nothing to remember: the next state is posted anew too
    first, second = teams.posts
    assert "Task failed" in json.dumps(first.payload)
    assert "Intervention resolved" in json.dumps(second.payload)
    assert REF.ts not in json.dumps(second.payload)


async def test_any_success_status_is_sent_whatever_its_body(
    teams: FakeTeams, http: httpx.AsyncClient
) -> None:
    teams.reset()
    teams.script("alerts", ["http:200"])  # a flow with a Response step answering JSON
    assert (await sender(teams, http).send(Outgoing(CARD))).outcome is Outcome.SENT


@pytest.mark.parametrize(
    ("setup", "reason", "detail"),
    [
        ("unknown-flow", Reason.CHANNEL, "WorkflowNotFound"),
        ("no-sig", Reason.AUTH, "DirectApiAuthorizationRequired"),
        ("wrong-sig", Reason.AUTH, "DirectApiInvalidAuthorizationSignature"),
        ("disabled", Reason.CHANNEL, "WorkflowTriggerIsNotEnabled"),
        ("deleted", Reason.CHANNEL, "WorkflowTriggerIsNotEnabled"),
        ("http:403", Reason.AUTH, "Http403"),
        ("http:400", Reason.INVALID_PAYLOAD, "Http400"),
        ("http:413", Reason.INVALID_PAYLOAD, "Http413"),
    ],
)
async def test_a_flow_that_is_gone_off_or_refusing_is_a_permanent_failure(
    teams: FakeTeams, http: httpx.AsyncClient, setup: str, reason: Reason, detail: str
) -> None:
    teams.reset()
    url = teams.workflow_url("alerts")
    if setup == "unknown-flow":
        url = teams.workflow_url("gone", sig="sig-gone")
    elif setup == "no-sig":
        url = teams.workflow_url("alerts", sig="")
    elif setup == "wrong-sig":
        url = teams.workflow_url("alerts", sig="sig-rotated")
    elif setup == "disabled":
        teams.disable("alerts")
    elif setup == "deleted":
        teams.delete("alerts")
    else:
        teams.script("alerts", [setup])
    result = await sender(teams, http, url).send(Outgoing(CARD))
    assert (result.outcome, result.reason, result.detail) == (Outcome.PERMANENT, reason, detail)
    assert not teams.posts
    assert_no_secret(result, teams)


async def test_a_card_teams_would_refuse_is_a_permanent_invalid_payload(
    teams: FakeTeams, http: httpx.AsyncClient
) -> None:
    teams.reset()
    small = FakeTeams(flows={"alerts": "sig-alerts"}, max_bytes=500).start()
    try:
        result = await sender(small, http, small.workflow_url("alerts")).send(Outgoing(CARD))
    finally:
        small.stop()
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, Reason.INVALID_PAYLOAD)
    assert result.detail == "RequestEntityTooLarge"


@pytest.mark.parametrize(("step", "after"), [("throttled:7", 7.0), ("throttled:none", None)])
async def test_throttling_is_retried_after_its_retry_after(
    teams: FakeTeams, http: httpx.AsyncClient, step: str, after: float | None
) -> None:
    teams.reset()
    teams.script("alerts", [step])
    result = await sender(teams, http).send(Outgoing(CARD))
    assert (result.outcome, result.reason) == (Outcome.RETRY, Reason.RATE_LIMITED)
    assert result.retry_after == after  # None: the worker's own backoff decides


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried(
    teams: FakeTeams, http: httpx.AsyncClient, status: int
) -> None:
    teams.reset()
    teams.script("alerts", [f"http:{status}"])
    result = await sender(teams, http).send(Outgoing(CARD))
    assert (result.outcome, result.reason) == (Outcome.RETRY, Reason.SERVER_ERROR)


async def test_no_answer_is_a_retried_timeout_and_no_server_a_retried_connection(
    teams: FakeTeams, http: httpx.AsyncClient
) -> None:
    teams.reset()
    teams.script("alerts", ["timeout"])
    slow = TeamsSender(http, teams.workflow_url("alerts"), timeout=0.3)
    result = await slow.send(Outgoing(CARD))
    assert (result.outcome, result.reason) == (Outcome.RETRY, Reason.TIMEOUT)
    nobody = f"http://127.0.0.1:{free_port()}/workflows/x/triggers/manual/paths/invoke?sig=s3cret"
    refused = await TeamsSender(http, nobody).send(Outgoing(CARD))
    assert (refused.outcome, refused.reason) == (Outcome.RETRY, Reason.CONNECTION)
    assert "s3cret" not in json.dumps([result.detail, refused.detail])


# ---------------------------------------------------------------- the destination kind


TEAMS_CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [test-secret]}
  deck: {provider: deck, secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]}
destinations:
  alerts: {type: teams, workflow_url: "%(alerts)s"}
  ops: {type: teams, workflow_url: "%(ops)s"}
  gone: {type: teams, workflow_url: "%(gone)s"}
routes:
  - name: gone
    match: {source: anchor, type: identity.*}
    to: [gone]
  - name: flaky
    match: {source: anchor, type: task.failed}
    to: [alerts]
    mention: ["teams:alice@contoso.com|Alice Smith", "@here"]
    repeat: {key: [data.task_id, data.error.type], interval: 1h}
  - name: sessions
    match: {source: [anchor, deck]}
    to: [ops]
    thread: auto
"""


def config_text(teams: FakeTeams) -> str:
    return TEAMS_CONFIG % {
        "alerts": teams.workflow_url("alerts"),
        "ops": teams.workflow_url("ops", style="powerplatform"),
        "gone": teams.workflow_url("gone", sig="sig-gone"),
    }


def test_a_teams_destination_is_paced_by_a_digest_of_its_url_at_teams_pace(
    teams: FakeTeams, tmp_path: Path
) -> None:
    config = parse_config(config_text(teams), tmp_path / "relay.yaml", {}).config
    keys = pace_keys(config, dry_run=True)
    assert keys["alerts"].startswith("teams:") and keys["alerts"] != keys["ops"]
    for name, key in keys.items():
        assert "sig" not in key and "127.0.0.1" not in key, name
        assert "sig" not in describe(config.destinations[name], False)
    assert paces(config, keys)[keys["alerts"]] == (3.5, 1.0)  # under Teams' ~4 a second
    teams_kind = kind(config.destinations["alerts"])
    assert (teams_kind.chat, teams_kind.threads, teams_kind.updates) == ("teams", False, False)


def test_without_a_url_a_teams_destination_prints_its_card(tmp_path: Path) -> None:
    text = "sources: {anchor: {provider: anchor, secrets: [s]}}\n"
    text += "destinations: {t: {type: teams, workflow_url: '${TEAMS_WORKFLOW_URL:-}'}}\n"
    text += "default: {to: [t]}\n"
    config = parse_config(text, tmp_path / "relay.yaml", {}).config
    assert config.destinations["t"].workflow_url is None  # type: ignore[union-attr]
    console = io.StringIO()
    senders = build_senders(config, Clients(None, console, 10.0))
    result = asyncio.run(senders["t"].send(Outgoing(CARD)))
    assert result.outcome is Outcome.SENT
    line = json.loads(console.getvalue())
    assert (line["destination"], line["chat"], line["type"]) == ("t", "teams", "message")
    assert line["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert describe(config.destinations["t"], False) == "teams workflow (no URL: console)"


# ---------------------------------------------------------------- the worker, end to end


@pytest.fixture
async def rig(
    database: str, teams: FakeTeams, tmp_path: Path, http: httpx.AsyncClient
) -> AsyncIterator[Rig]:
    teams.reset()
    pacing = Pacing(rate=50, burst=50)  # this checks what arrives, not Teams' pace
    async with Rig(config_text(teams), database, tmp_path, http=http, pacing=pacing) as r:
        yield r


async def test_a_conversation_degrades_to_flat_posts_each_showing_its_state(
    rig: Rig, teams: FakeTeams
) -> None:
    # a session thread and an intervention updated in place, in Slack; flat posts in Teams
    await rig.accept("anchor", with_id(sample("anchor", "task.completed"), "a1"))
    await rig.accept("anchor", with_id(sample("anchor", "intervention.requested"), "a2"))
    await rig.settle()
    await rig.accept("anchor", with_id(sample("anchor", "intervention.resolved"), "a3"))
    await rig.accept("deck", with_id(sample("deck", "task_run.queued", id="trun_1"), "d1"))
    await rig.accept("deck", with_id(sample("deck", "task_run.completed", id="trun_1"), "d2"))
    await rig.settle()

    posts = teams.posts_to("ops")
    shown = [json.dumps(p.payload, ensure_ascii=False) for p in posts]
    assert len(posts) == 5
    assert "Task completed" in shown[0] and "needs a human" in shown[1]
    assert "resolved" in shown[2].lower()  # the update, posted as a new message
    assert "queued" in shown[3].lower() and "completed" in shown[4].lower()
    sent = await rig.store.rows(Status.SENT)
    assert sorted(r.last_reason or "" for r in sent) == ["ok"] * 5
    assert all(r.attempts == 1 for r in sent)


async def test_a_repeat_is_posted_again_with_the_configured_mention_only(
    rig: Rig, teams: FakeTeams
) -> None:
    failed = sample("anchor", "task.failed")
    failed["data"]["error"]["message"] = "<at>Alice Smith</at> @here [x](https://evil.example)"
    await rig.accept("anchor", with_id(failed, "f1"))
    await rig.settle()
    await rig.accept("anchor", with_id(failed, "f2"))
    await rig.settle()
    first, second = teams.posts_to("alerts")
    for post in (first, second):
        assert [(t.entity, t.element) for t in post.at_tags] == [("alice@contoso.com", "TextBlock")]
        assert "https://evil.example" not in json.dumps([a for a in post.card.get("actions", [])])


async def test_throttling_waits_for_retry_after_then_delivers(rig: Rig, teams: FakeTeams) -> None:
    teams.script("ops", ["throttled:1"])
    started = time.monotonic()
    await rig.accept("anchor", with_id(sample("anchor", "task.completed"), "t1"))
    await rig.settle()
    (request_429, request_202) = [r for r in teams.requests if r.flow == "ops"]
    assert (request_429.status, request_202.status) == (429, 202)
    assert request_202.received - request_429.received >= 0.95
    assert time.monotonic() - started < 10
    (row,) = await rig.store.rows(Status.SENT)
    assert row.attempts == 2


async def test_a_flow_that_is_gone_makes_a_dead_letter_without_its_url(
    rig: Rig, teams: FakeTeams
) -> None:
    await rig.accept("anchor", with_id(sample("anchor", "identity.authenticated"), "g1"))
    await rig.settle()
    (dead,) = await rig.store.rows(Status.DEAD)
    assert (dead.destination, dead.last_reason, dead.last_error) == (
        "gone",
        "channel",
        "WorkflowNotFound",
    )
    assert dead.attempts == 1  # permanent: never retried
