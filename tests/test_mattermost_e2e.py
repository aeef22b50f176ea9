"""End to end: `relay serve` as a real process takes a signed Anchor event and delivers it to
Mattermost, through the REST API as a bot and through an incoming webhook, to the fake
Mattermost over HTTP; the route's mentions notify, the event's own text mentions nobody."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakemattermost import ALERTS, DEFAULT_HOOKS, TOKEN, FakeMattermost, links_in, mention_texts
from harness import RelayProcess, sample
from signing import ANCHOR_SECRET, anchor_headers

HOOK = next(iter(DEFAULT_HOOKS))
CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
destinations:
  bot: {type: mattermost, url: "${MATTERMOST_URL}", token: "${MATTERMOST_TOKEN}",
        channel_id: %(channel)s}
  hook: {type: mattermost, webhook_url: "${MATTERMOST_WEBHOOK_URL}"}
routes:
  - match: {source: anchor, type: task.failed}
    to: [bot, hook]
    mention: ["@here", "mattermost:alice"]
pacing: {rate: 20, burst: 5}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMattermost]:
    with FakeMattermost() as server:
        yield server


def test_a_signed_event_reaches_mattermost_both_ways(
    fake: FakeMattermost, relay_process: type[RelayProcess], tmp_path: Path
) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG % {"channel": ALERTS})
    env = {
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "MATTERMOST_URL": fake.url,
        "MATTERMOST_TOKEN": TOKEN,
        "MATTERMOST_WEBHOOK_URL": fake.webhook_url(HOOK),
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
    }
    relay = relay_process(config, env, tmp_path).start()
    event = json.loads(sample("anchor", "task.failed.json").read_text())
    event["data"]["error"]["message"] = "@channel <!here> [reset](https://evil.example) @bob"
    body = json.dumps(event).encode()
    answer = httpx.post(
        relay.url + "/hooks/anchor", content=body, headers=anchor_headers(body, int(time.time()))
    )
    assert answer.status_code == 202, answer.text

    posts = fake.wait_for_posts(2, timeout=20)
    assert sorted(p.via for p in posts) == ["api", f"webhook:{HOOK}"]
    for post in posts:
        assert post.channel_id == ALERTS
        assert post.message.startswith("@here @alice ❌ **Task failed")
        assert post.mentions == {"@here", "@alice"}  # none from the event's text
        shown = json.dumps(post.attachments, ensure_ascii=False)
        assert "reset" in shown and "https://evil.example" not in [
            link for text in mention_texts(post.message, post.attachments)
            for link in links_in(text)
        ]  # fmt: skip
    assert TOKEN not in relay.stdout() + relay.stderr()
    assert HOOK not in relay.stdout() + relay.stderr()


def test_a_refused_token_and_a_gone_hook_leave_no_secret_behind(
    fake: FakeMattermost, relay_process: type[RelayProcess], tmp_path: Path
) -> None:
    token, key = "mm-scan-secret-8080", "scansecrethook0000000000aa"
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG % {"channel": ALERTS})
    env = {
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "MATTERMOST_URL": fake.url,
        "MATTERMOST_TOKEN": token,  # the fake refuses it: 401
        "MATTERMOST_WEBHOOK_URL": fake.webhook_url(key),  # no such hook: 400, gone
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
        "RELAY_LOG_LEVEL": "debug",
    }
    fake.reset()
    relay = relay_process(config, env, tmp_path).start()
    body = sample("anchor", "task.failed.json").read_bytes()
    headers = anchor_headers(body, int(time.time()))
    assert httpx.post(relay.url + "/hooks/anchor", content=body, headers=headers).is_success
    expected = ['destination="bot",outcome="permanent",reason="auth"',
                'destination="hook",outcome="permanent",reason="auth"']  # fmt: skip
    deadline = time.monotonic() + 20
    metrics = ""
    while not all(e in metrics for e in expected) and time.monotonic() < deadline:
        time.sleep(0.1)
        metrics = httpx.get(relay.url + "/metrics").text
    assert all(e in metrics for e in expected), metrics
    assert sorted(r.error or "" for r in fake.requests) == [
        "api.context.session_expired.app_error", "web.incoming_webhook.invalid.app_error"
    ]  # fmt: skip
    shown = relay.stdout() + relay.stderr() + metrics
    for secret in (token, key, fake.webhook_url(key)):
        assert secret not in shown
    assert fake.posts == []
