"""End to end: `relay serve` as a real process, a signed Anchor event routed to a Teams
destination, and the fake Teams receiving its Adaptive Card over HTTP; relay's logs never show
the workflow URL's signature."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from faketeams import FakeTeams, check
from harness import RelayProcess, sample
from signing import ANCHOR_SECRET, anchor_headers

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
destinations:
  team: {type: teams, workflow_url: "${TEAMS_WORKFLOW_URL}"}
routes:
  - match: {source: anchor, type: task.failed}
    to: [team]
    mention: ["teams:alice@contoso.com|Alice Smith", "@here"]
default: {to: [team]}
"""


@pytest.fixture(scope="module")
def teams() -> Iterator[FakeTeams]:
    with FakeTeams(flows={"alerts": "SECRETsig-e2e"}) as fake:
        yield fake


def test_a_signed_event_reaches_teams_as_an_adaptive_card(
    teams: FakeTeams, relay_process: type[RelayProcess], tmp_path: Path
) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG)
    env = {
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "TEAMS_WORKFLOW_URL": teams.workflow_url("alerts"),
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
        "RELAY_LOG_LEVEL": "DEBUG",
    }
    relay = relay_process(config, env, tmp_path).start()
    body = sample("anchor", "task.failed.json").read_bytes()
    answer = httpx.post(
        relay.url + "/hooks/anchor",
        content=body,
        headers=anchor_headers(body, int(time.time())),
    )
    assert answer.status_code == 202, answer.text
    (post,) = teams.wait_for_posts(1)
    assert check(post.payload) == []
    assert [(tag.entity, tag.element) for tag in post.pings] == [("alice@contoso.com", "TextBlock")]
    header = post.card["body"][1]["items"][0]["inlines"][0]["text"]
    assert header == "\u274c Task failed: invalid credentials"
    deadline = time.monotonic() + 10
    while "delivered" not in relay.stdout() + relay.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert relay.terminate() in (0, -15)  # uvicorn re-raises SIGTERM once shut down
    logs = relay.stdout() + relay.stderr()
    assert "delivered" in logs
    assert "SECRETsig-e2e" not in logs and "/workflows/alerts" not in logs
