"""End to end: `relay serve` as a real process, signed requests over HTTP, a fake Slack over HTTP.

Every sample event of the three platforms must reach the channel its route names, with a text
fallback and blocks the fake Slack accepts; forged, unsigned and stale requests get 401 and post
nothing; a repeated event id gets 200 and posts nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakeslack import FakeSlack, Message
from faketabstack import API_KEY, FakeTabstack
from harness import ROOT, RelayProcess, post_anchor, post_deck, sample
from signing import (
    ADMIN_TOKEN,
    ANCHOR_SECRET,
    DECK_SECRET,
    SLACK_TOKEN,
    anchor_headers,
)

SAMPLES = ROOT / "relay" / "samples"
ALERTS, EVENTS = "C0ALERTS01", "C0EVENTS01"
ATTENTION = {
    "anchor": {"task.failed", "session.failed", "batch.failed", "intervention.requested",
               "identity.authentication_failed"},
    "deck": {"credential.invalid", "session.failed", "task_run.failed",
             "task_run.interaction_required", "task_run.pending", "event_destination.deactivated"},
}  # fmt: skip


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def example_config(tmp_path: Path, pacing: str | None = None) -> Path:
    """config.example.yaml, as shipped or with other pacing (the same routes and templates)."""
    if pacing is None:
        return ROOT / "config.example.yaml"
    config = tmp_path / "relay.yaml"
    text = (ROOT / "config.example.yaml").read_text()
    config.write_text(text.replace("templates: ./templates", f"pacing: {pacing}"))
    return config


@pytest.fixture
def relay(
    slack: FakeSlack,
    relay_process: type[RelayProcess],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> RelayProcess:
    """relay on config.example.yaml; a test marked `fast_pacing` lifts the pacing to 20/s (it
    checks what arrives where, not how fast: its 47 messages would take 25 s at 1/s). A test
    parametrized with "delivery process" runs the worker in a process of its own."""
    slack.reset()
    pacing = "{rate: 20, burst: 5}" if request.node.get_closest_marker("fast_pacing") else None
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "DECK_WEBHOOK_SECRET": DECK_SECRET,
        "RELAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
    }
    if getattr(request, "param", None) == "delivery process":
        env["RELAY_DELIVERY_PROCESS"] = "on"
    return relay_process(example_config(tmp_path, pacing), env, tmp_path).start()


def wait_for(slack: FakeSlack, count: int, timeout: float = 60.0) -> list[Message]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(slack.messages) >= count:
            return slack.messages
        time.sleep(0.05)
    raise AssertionError(f"expected {count} messages, got {len(slack.messages)}")


@pytest.mark.fast_pacing
@pytest.mark.parametrize("relay", ["in process", "delivery process"], indirect=True)
def test_every_event_type_reaches_its_channel(relay: RelayProcess, slack: FakeSlack) -> None:
    expected: dict[str, tuple[str, str]] = {}  # event id -> (channel, provider text)
    for provider, post in (("anchor", post_anchor), ("deck", post_deck)):
        for path in sorted((SAMPLES / provider).glob("*.json")):
            body = path.read_bytes()
            event = json.loads(body)
            answer = post(relay, body)
            if event["type"] == "agent.updated":  # dropped as noise by the example config
                assert answer.status_code == 202
                continue
            assert answer.status_code == 202, (path.name, answer.text)
            if event["type"] == "intervention.resolved":  # updates the request in place
                continue
            channel = ALERTS if event["type"] in ATTENTION[provider] else EVENTS
            expected[event["id"]] = (channel, event.get("text") or "")
    wait_for(slack, len(expected))
    deadline = time.monotonic() + 10
    while not slack.updates and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # longer than one pacing interval: anything extra would have arrived
    messages = slack.messages
    assert len(messages) == len(expected)  # nothing extra (the dropped type posted nothing)
    (resolved,) = slack.updates
    request = next(m for m in messages if m.ts == resolved.ts)
    assert request.channel == ALERTS and "needs a human" in (request.text or "")
    assert "resolved" in (resolved.text or "").lower()
    # one channel's messages leave in the order they were accepted: pair them up per channel
    for channel in (ALERTS, EVENTS):
        posted = [m for m in messages if m.channel == channel]
        wanted = [text for ch, text in expected.values() if ch == channel]
        assert len(posted) == len(wanted), channel
        for message, provider_text in zip(posted, wanted, strict=True):
            assert message.text, "every message carries a text fallback"
            assert message.blocks, "every message carries blocks"
            assert message.unfurl_links is False and message.unfurl_media is False
            rendered = json.dumps(message.blocks)
            assert len(rendered) > 2 * len(provider_text), "richer than the provider's one-liner"


def test_forged_unsigned_and_stale_requests_get_401_and_post_nothing(
    relay: RelayProcess, slack: FakeSlack
) -> None:
    body = sample("anchor", "task.completed.json").read_bytes()
    forged = anchor_headers(body, int(time.time()), secret="0" * 64)
    assert httpx.post(relay.url + "/hooks/anchor", content=body, headers=forged).status_code == 401
    unsigned = {"Content-Type": "application/json"}
    answer = httpx.post(relay.url + "/hooks/anchor", content=body, headers=unsigned)
    assert answer.status_code == 401
    assert set(answer.json()) == {"error", "detail"}
    assert post_anchor(relay, body, ts=int(time.time()) - 600).status_code == 401
    tampered = body.replace(b"4218", b"4219")
    headers = anchor_headers(body, int(time.time()))
    assert (
        httpx.post(relay.url + "/hooks/anchor", content=tampered, headers=headers).status_code
        == 401
    )
    deck_body = sample("deck", "task_run.failed.json").read_bytes()
    assert post_deck(relay, deck_body, ts=int(time.time()) - 3600).status_code == 401
    time.sleep(1.0)
    assert slack.messages == []


def test_repeated_event_id_gets_200_and_posts_once(relay: RelayProcess, slack: FakeSlack) -> None:
    body = sample("deck", "task_run.failed.json").read_bytes()
    assert post_deck(relay, body).status_code == 202
    again = post_deck(relay, body)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    wait_for(slack, 1)
    time.sleep(0.5)
    assert len(slack.messages) == 1


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/hooks/nope", {"Content-Type": "application/json"}, 404),
        ("/hooks/anchor", {"Content-Type": "text/plain"}, 415),
        ("/hooks/tabstack", {"Content-Type": "application/json"}, 415),
        ("/hooks/tabstack", {"Content-Type": "text/event-stream"}, 401),
    ],
)
def test_contract_status_codes(
    relay: RelayProcess, path: str, headers: dict[str, str], status: int
) -> None:
    answer = httpx.post(relay.url + path, content=b"{}", headers=headers)
    assert answer.status_code == status
    assert set(answer.json()) == {"error", "detail"}


def test_body_over_the_limit_is_413(relay: RelayProcess) -> None:
    body = b'{"pad": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    answer = httpx.post(
        relay.url + "/hooks/anchor", content=body, headers=anchor_headers(body, int(time.time()))
    )
    assert answer.status_code == 413


def test_signed_but_malformed_is_400(relay: RelayProcess) -> None:
    for body in (b"not json", b'{"type": "task.completed", "data": {}}', b"[1, 2]"):
        answer = post_anchor(relay, body)
        assert answer.status_code == 400, body
        assert answer.json()["error"] == "malformed"


def test_piped_tabstack_stream_posts_start_and_end(relay: RelayProcess, slack: FakeSlack) -> None:
    stream = sample("tabstack", "run-error-current-format.sse").read_bytes()

    def chunks() -> Iterator[bytes]:
        for block in stream.split(b"\n\n"):
            yield block + b"\n\n"

    answer = httpx.post(
        relay.url + "/hooks/tabstack",
        content=chunks(),
        headers={"Content-Type": "text/event-stream", "Authorization": f"Bearer {ADMIN_TOKEN}",
                 "X-Relay-Run-Id": "run_e2e_1"},
    )  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert answer.json()["run_id"] == "run_e2e_1"
    messages = wait_for(slack, 2)
    started = next(m for m in messages if m.channel == EVENTS)
    failed = next(m for m in messages if m.channel == ALERTS)
    assert "Log in and download the invoice" in json.dumps(started.blocks)
    assert "Login form rejected the credentials" in json.dumps(failed.blocks)
    assert "TASK_FAILED" in json.dumps(failed.blocks)


def test_runs_endpoint_starts_a_tabstack_run(
    slack: FakeSlack, relay_process: type[RelayProcess], tmp_path: Path
) -> None:
    slack.reset()
    with FakeTabstack(sample("tabstack", "run-success.sse")) as tabstack:
        env = {
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_API_URL": slack.api_url,
            "RELAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "TABSTACK_API_KEY": API_KEY,
            "TABSTACK_BASE_URL": tabstack.base_url,
            "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
        }
        relay = relay_process(ROOT / "config.example.yaml", env, tmp_path).start()
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert httpx.post(relay.url + "/runs/tabstack", json={"task": "x"}).status_code == 401
        assert (
            httpx.post(relay.url + "/runs/tabstack", json={"url": "x"}, headers=auth).status_code
            == 400
        )
        answer = httpx.post(
            relay.url + "/runs/tabstack",
            json={"task": "Find the product price", "url": "https://example.com/product"},
            headers=auth,
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["run_id"].startswith("run_")
        messages = wait_for(slack, 2)
        assert tabstack.requests[0]["task"] == "Find the product price"
        assert all(m.channel == EVENTS for m in messages)
        assert any("The product costs $19.99" in json.dumps(m.blocks) for m in messages)


def test_dry_run_prints_the_block_kit_message(
    relay_process: type[RelayProcess], tmp_path: Path
) -> None:
    env = {
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/r.db",
        "RELAY_DRY_RUN_FORMAT": "json",  # the readable form: tests/test_console_text.py
    }
    relay = relay_process(ROOT / "config.example.yaml", env, tmp_path).start()
    body = sample("anchor", "task.completed.json").read_bytes()
    assert post_anchor(relay, body).status_code == 202
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "blocks" not in relay.stdout():
        time.sleep(0.05)
    printed = json.loads(relay.stdout().strip().splitlines()[0])
    assert printed["channel"] == "#browser-events"
    assert printed["blocks"][0]["type"] == "header"
    # SIGTERM: graceful shutdown (uvicorn re-raises the signal once the app has shut down)
    assert relay.terminate() in (0, -15)
    assert "Application shutdown complete." in relay.stderr()


# A lone surrogate: in free text (`\udfff` escaped, `\ud800` escaped and as the bytes ED A0 80,
# which json.loads on bytes lets through) it is accepted and shown as U+FFFD; in the id, which
# relay cannot show any other way, it is refused. Never a 500, for it or for its neighbours.
POISONS = {
    "text": ((b"@TEXT@", b"broken \\udfff page"), (b"@SHOWN@", b"broken \\ud800 \xed\xa0\x80")),
    "id": ((b"@ID@", b"evt_poison_\\ud800"),),
}


def completed_task(i: int, event_id: str, shown: str = "confirmed", text: str = "") -> bytes:
    base = json.loads(sample("anchor", "task.completed.json").read_text())
    data = {
        **base["data"],
        "task_id": f"tsk_poison_{i:02d}",
        "session_id": f"ses_poison_{i:02d}",
        "output": {"value": {"status": shown}},
    }
    return json.dumps({**base, "id": event_id, "text": text, "data": data}).encode()


async def post_together(url: str, bodies: list[bytes]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(
                    url + "/hooks/anchor", content=b, headers=anchor_headers(b, int(time.time()))
                )
                for b in bodies
            )
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("poison", sorted(POISONS))
def test_an_event_with_a_lone_surrogate_never_fails_the_events_sent_with_it(
    slack: FakeSlack,
    relay_process: type[RelayProcess],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    backend: str,
    poison: str,
) -> None:
    slack.reset()
    config = tmp_path / "relay.yaml"  # unthrottled, so 13 messages arrive within a second
    config.write_text(
        (ROOT / "config.example.yaml")
        .read_text()
        .replace("templates: ./templates", "pacing: {rate: 100, burst: 100}")
    )
    database = f"sqlite:///{tmp_path}/relay.db"
    if backend == "postgres":
        database = request.getfixturevalue("pg_url")
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_DATABASE_URL": database,
    }
    relay = relay_process(config, env, tmp_path).start()
    bad = completed_task(99, "@ID@" if poison == "id" else "evt_poison_99", "@SHOWN@", "@TEXT@")
    for placeholder, raw in POISONS[poison]:
        bad = bad.replace(placeholder, raw)
    valid = [completed_task(i, f"evt_poison_{i:02d}") for i in range(12)]
    # sent at the same instant: on SQLite they are committed as one group
    answers = asyncio.run(post_together(relay.url, [*valid[:6], bad, *valid[6:]]))
    statuses = [a.status_code for a in answers]
    assert statuses[:6] + statuses[7:] == [202] * 12, [a.text for a in answers]
    refused = answers[6]
    if poison == "id":
        assert refused.status_code == 400, refused.text
        assert refused.json() == {
            "error": "malformed",
            "detail": "field `id` must be valid text, without a lone surrogate (\\ud800-\\udfff)"
            " or NUL (\\u0000), got 'evt_poison_\\ud800'",
        }
    else:
        assert refused.status_code == 202, refused.text
    wanted = 12 + (poison == "text")
    messages = wait_for(slack, wanted, timeout=30)
    time.sleep(0.5)  # anything extra would have arrived
    assert len(slack.messages) == wanted
    texts = [(m.text or "") + json.dumps(m.blocks, ensure_ascii=False) for m in messages]
    for i in range(12):
        assert sum(f"evt_poison_{i:02d}" in t for t in texts) == 1, i
    shown = [t for t in texts if "evt_poison_99" in t]
    if poison == "text":
        (message,) = shown
        assert "broken \ufffd \ufffd" in message  # the surrogates, shown as U+FFFD
    else:
        assert shown == []
