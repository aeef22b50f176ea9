"""Secrets never leave relay: a run with distinctive secrets is driven through every error path
(forged signatures, wrong admin tokens, Slack refusing the token, a webhook that is gone, an
unreachable Tabstack, a bad reload), and all of its output, answers and metrics are scanned."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakeslack import FakeSlack
from harness import RelayProcess, free_port
from signing import anchor_headers, deck_headers, slack_headers

from relay.config.values import MENTION_FORMS

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = (ROOT / "relay" / "samples" / "anchor" / "task.completed.json").read_bytes()
DECK_SAMPLE = (ROOT / "relay" / "samples" / "deck" / "task_run.failed.json").read_bytes()

ANCHOR = "anchor-scan-secret-7f3e9a"
DECK = "whsec_" + base64.b64encode(b"deck-scan-secret-12345678").decode()
SLACK = "xoxb-scan-secret-5511"
ADMIN = "admin-scan-secret-9922"
TABSTACK = "tabstack-scan-secret-3141"
HOOK_PATH = "hook-scan-secret-4242"
SIGNING = "signing-scan-secret-8080"

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
  deck: {provider: deck, secrets: ["${DECK_WEBHOOK_SECRET}"]}
  tabstack: {provider: tabstack, token: "${RELAY_ADMIN_TOKEN}", api_key: "${TABSTACK_API_KEY}",
             base_url: "${TABSTACK_BASE_URL}"}
slack: {token: "${SLACK_BOT_TOKEN}", api_url: "${SLACK_API_URL}",
        signing_secrets: ["${SLACK_SIGNING_SECRET}"]}
destinations:
  events: {type: slack, channel: "#browser-events"}
  hook: {type: webhook, url: "${OPS_WEBHOOK_URL}"}
default: {to: [events, hook]}
store: {max_age: 1s}
"""


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def test_no_secret_appears_in_logs_answers_or_metrics(
    slack: FakeSlack, relay_process: type[RelayProcess], tmp_path: Path
) -> None:
    secrets = [ANCHOR, DECK, DECK.removeprefix("whsec_"), SLACK, ADMIN, TABSTACK, HOOK_PATH,
               SIGNING]  # fmt: skip
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG)
    env = {
        "ANCHOR_WEBHOOK_SECRET": ANCHOR,
        "DECK_WEBHOOK_SECRET": DECK,
        "SLACK_BOT_TOKEN": SLACK,  # the fake Slack refuses it: invalid_auth
        "SLACK_API_URL": slack.api_url,
        "OPS_WEBHOOK_URL": slack.webhook_url(HOOK_PATH),  # no such hook: gone
        "RELAY_ADMIN_TOKEN": ADMIN,
        "TABSTACK_API_KEY": TABSTACK,
        "TABSTACK_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # nobody listens
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
        "RELAY_LOG_LEVEL": "debug",
        "SLACK_SIGNING_SECRET": SIGNING,
    }
    relay = relay_process(config, env, tmp_path).start()
    answers: list[str] = []

    def keep(answer: httpx.Response) -> httpx.Response:
        answers.append(f"{answer.status_code} {answer.headers} {answer.text}")
        return answer

    now = int(time.time())
    url = relay.url
    assert (
        keep(
            httpx.post(
                url + "/hooks/anchor",
                content=SAMPLE,
                headers=anchor_headers(SAMPLE, now, secret=ANCHOR),
            )
        ).status_code
        == 202
    )
    assert (
        keep(
            httpx.post(
                url + "/hooks/anchor",
                content=SAMPLE,
                headers=anchor_headers(SAMPLE, now, secret="0" * 64),
            )
        ).status_code
        == 401
    )
    assert (
        keep(
            httpx.post(
                url + "/hooks/anchor",
                content=SAMPLE,
                headers=anchor_headers(SAMPLE, now + 3600, secret=ANCHOR),
            )
        ).status_code
        == 401
    )  # a future timestamp
    assert (
        keep(
            httpx.post(
                url + "/hooks/deck",
                content=DECK_SAMPLE,
                headers=deck_headers(DECK_SAMPLE, now, secret=DECK),
            )
        ).status_code
        == 202
    )
    assert (
        keep(
            httpx.post(
                url + "/hooks/deck", content=DECK_SAMPLE, headers=deck_headers(DECK_SAMPLE, now)
            )
        ).status_code
        == 401
    )
    click = b"payload=%7B%22type%22%3A%22block_actions%22%7D"  # signed, but no click in it
    for secret, status in ((SIGNING, 400), (SIGNING[:-1], 401)):
        answer = httpx.post(url + "/slack/interactions", content=click,
                            headers=slack_headers(click, now, secret))  # fmt: skip
        assert keep(answer).status_code == status
    wrong = {"Authorization": "Bearer " + ADMIN[:-1]}
    assert keep(httpx.post(url + "/admin/reload", headers=wrong)).status_code == 401
    assert keep(httpx.post(url + "/runs/tabstack", headers=wrong, json={})).status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert keep(httpx.post(url + "/runs/tabstack", headers=admin,
                           json={"task": "t"})).status_code == 502  # fmt: skip
    config.write_text(CONFIG.replace("events, hook", "events, nowhere"))
    assert keep(httpx.post(url + "/admin/reload", headers=admin)).status_code == 422
    stream = b'event: start\ndata: {"task": "t"}\n\n'
    assert (
        keep(
            httpx.post(
                url + "/hooks/tabstack",
                content=stream,
                headers={"Content-Type": "text/event-stream", "Authorization": "Bearer nope"},
            )
        ).status_code
        == 401
    )

    deadline = time.monotonic() + 20  # both messages of both events fail for good
    while time.monotonic() < deadline:
        if "dead letter" in relay.stdout() + relay.stderr():
            break
        time.sleep(0.2)
    time.sleep(1.5)
    metrics = keep(httpx.get(url + "/metrics")).text
    assert "relay_dead_letters_total" in metrics
    relay.terminate()

    output = relay.stdout() + relay.stderr()
    assert "invalid_auth" in output  # the failures were logged...
    for secret in secrets:  # ...and nothing secret with them
        for where, text in (("logs", output), ("answers", "\n".join(answers)),
                            ("metrics", metrics)):  # fmt: skip
            assert secret not in text, f"{secret!r} found in {where}"
    recorded = json.dumps([r.body for r in slack.requests])
    assert ANCHOR not in recorded and ADMIN not in recorded


def test_every_config_secret_is_scrubbed_from_log_lines(tmp_path: Path) -> None:
    import logging

    from relay.config import parse_config, secret_values
    from relay.logs import JsonFormatter, protect

    text = CONFIG.replace("${OPS_WEBHOOK_URL}", "https://hooks.example/T1/B1/" + HOOK_PATH)
    env = {"ANCHOR_WEBHOOK_SECRET": ANCHOR, "DECK_WEBHOOK_SECRET": DECK, "SLACK_BOT_TOKEN": SLACK,
           "SLACK_API_URL": "http://x/api/", "RELAY_ADMIN_TOKEN": ADMIN,
           "TABSTACK_API_KEY": TABSTACK, "TABSTACK_BASE_URL": "http://x/v1",
           "SLACK_SIGNING_SECRET": SIGNING}  # fmt: skip
    values = secret_values(parse_config(text, tmp_path / "relay.yaml", env).config)
    assert sorted(values) == sorted(
        [ANCHOR, DECK, SLACK, ADMIN, TABSTACK, "https://hooks.example/T1/B1/" + HOOK_PATH, SIGNING]
    )
    protect(values)
    url = "https://hooks.example/T1/B1/" + HOOK_PATH
    record = logging.LogRecord("x", logging.ERROR, "", 0, f"boom {SLACK} at %s", (url,), None)
    record.detail = {"url": "https://hooks.example/T1/B1/" + HOOK_PATH}
    line = JsonFormatter().format(record)
    assert SLACK not in line and HOOK_PATH not in line and "[redacted]" in line


WRONG = "xoxb-2718-TypedInTheWrongField"
RELOADED = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
destinations:
  events: {type: console}
default: {to: [events]}
"""
MENTION = f"not a mention (expected {MENTION_FORMS})"
# where a secret lands in the wrong field (`{}`: the value, typed or through `${VAR}`), and the
# problem a reload answers
WRONG_FIELDS = [
    (RELOADED + "slack: {timeout: '{}'}",
     "slack.timeout: not a duration (expected e.g. 30s, 5m, 24h)"),
    (RELOADED + "pacing: {rate: '{}'}",
     "pacing.rate: Input should be a valid number, unable to parse string as a number"),
    (RELOADED + "routes: [{to: ['{}']}]", "routes[0].to[0]: unknown destination (known: events)"),
    (RELOADED + "routes: [{to: [events], mention: '{}'}]", f"routes[0].mention: {MENTION}"),
    (RELOADED + "routes: [{to: [events], match: {source: ['{}']}}]",
     "routes[0].match.source[0]: unknown source (known: anchor)"),
    (RELOADED.replace("default", "  '{}': {type: console}\ndefault"),
     "destinations: name #2 must be lower-case letters, digits, - or _"),
    (RELOADED.replace("sources:\n", "sources:\n  '{}': {provider: generic, token: t}\n"),
     "sources: name #1 must be lower-case letters, digits, - or _"),
]  # fmt: skip


def test_a_reload_never_echoes_a_value_typed_into_the_wrong_field(
    relay_process: type[RelayProcess], tmp_path: Path
) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(RELOADED)
    env = {
        "ANCHOR_WEBHOOK_SECRET": ANCHOR,
        "WRONG_FIELD": WRONG,
        "RELAY_ADMIN_TOKEN": ADMIN,
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
    }
    relay = relay_process(config, env, tmp_path).start()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    answers: list[str] = []
    for template, problem in WRONG_FIELDS:
        # keys are never interpolated: a name can only be typed
        values = [WRONG] if "'{}':" in template else [WRONG, "${WRONG_FIELD}"]
        for value in values:
            config.write_text(template.replace("{}", value))
            answer = httpx.post(relay.url + "/admin/reload", headers=admin)
            answers.append(answer.text)
            assert answer.status_code == 422, (value, answer.text)
            assert answer.json() == {"error": "invalid_config", "detail": problem}
    assert httpx.get(relay.url + "/readyz").json()["generation"] == 1
    relay.terminate()
    logs = relay.stdout() + relay.stderr()
    assert logs.count("new config rejected") == len(answers) == 12
    assert "TypedInTheWrongField" not in logs + "\n".join(answers)
