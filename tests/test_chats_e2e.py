"""End to end across every chat: `relay serve` as a real process, one route sending `*.failed`
events to Slack (bot token), Discord, Microsoft Teams, Google Chat and Mattermost (REST API) at
once, and the five fakes over HTTP.

One signed Anchor `task.failed` reaches each chat exactly once, in that chat's native form, with
the route's mentions written the chat's own way (and only those it has a form for). A 429 storm
on Discord holds back Discord alone: the other chats get every message, in order, while it
lasts; Discord gets them all afterwards, in order, once each, never sooner than the
`Retry-After` it gave.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakediscord import FakeDiscord
from fakediscord import RequestRecord as DiscordRequest
from fakegooglechat import FakeGoogleChat
from fakemattermost import ALERTS as MM_ALERTS
from fakemattermost import TOKEN as MM_TOKEN
from fakemattermost import FakeMattermost
from fakeslack import FakeSlack
from faketeams import FakeTeams, check
from harness import RelayProcess, post_anchor, sample
from signing import ANCHOR_SECRET, SLACK_TOKEN

CHATS = ("slack", "discord", "teams", "google-chat", "mattermost")  # destination names
TITLE = "\u274c Task failed: invalid credentials"
DISCORD_USER = "123456789012345678"
GOOGLE_USER = "users/123456789012345678901"
TEAMS_SIG = "SECRETsig-every-chat"
CONFIG = f"""
sources:
  anchor: {{provider: anchor, secrets: ["${{ANCHOR_WEBHOOK_SECRET}}"]}}
slack: {{token: "${{SLACK_BOT_TOKEN}}", api_url: "${{SLACK_API_URL}}"}}
destinations:
  slack: {{type: slack, channel: "#browser-alerts"}}
  discord: {{type: discord, webhook_url: "${{DISCORD_WEBHOOK_URL}}"}}
  teams: {{type: teams, workflow_url: "${{TEAMS_WORKFLOW_URL}}"}}
  google-chat: {{type: google_chat, webhook_url: "${{GOOGLE_CHAT_WEBHOOK_URL}}"}}
  mattermost: {{type: mattermost, url: "${{MATTERMOST_URL}}", token: "${{MATTERMOST_TOKEN}}",
               channel_id: {MM_ALERTS}}}
routes:
  - name: failures
    match: {{type: "*.failed"}}
    to: [{", ".join(CHATS)}]
    mention: ["@here", U0ONCALL1, "discord:user:{DISCORD_USER}",
              "teams:alice@contoso.com|Alice Smith", "google_chat:{GOOGLE_USER}",
              "mattermost:alice"]
# faster than the chats' own paces: the tests look at who waits for whom, not at pacing
pacing: {{rate: 20, burst: 10}}
"""


@dataclass
class Chats:
    """The five fakes, one relay's config pointing at each."""

    slack: FakeSlack
    discord: FakeDiscord
    teams: FakeTeams
    google_chat: FakeGoogleChat
    mattermost: FakeMattermost

    def env(self) -> dict[str, str]:
        return {
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_API_URL": self.slack.api_url,
            "DISCORD_WEBHOOK_URL": self.discord.url("alerts"),
            "TEAMS_WORKFLOW_URL": self.teams.workflow_url("alerts"),
            "GOOGLE_CHAT_WEBHOOK_URL": self.google_chat.webhook_url("alerts"),
            "MATTERMOST_URL": self.mattermost.url,
            "MATTERMOST_TOKEN": MM_TOKEN,
        }

    def reset(self) -> None:
        for fake in (self.slack, self.discord, self.teams, self.google_chat, self.mattermost):
            fake.reset()

    def received(self) -> dict[str, list[tuple[float, str]]]:
        """What each chat accepted, in arrival order: (arrival time, the payload as JSON)."""

        def shown(payload: Any) -> str:
            return json.dumps(payload, ensure_ascii=False)

        found = {
            "slack": [(m.received, shown([m.text, m.blocks])) for m in self.slack.messages],
            "discord": [(m.received, shown([m.content, m.embeds])) for m in self.discord.messages],
            "teams": [(p.received, shown(p.payload)) for p in self.teams.posts],
            "google-chat": [(m.received, shown(m.body)) for m in self.google_chat.messages],
            "mattermost": [
                (p.received, shown([p.message, p.attachments])) for p in self.mattermost.posts
            ],
        }
        return {chat: sorted(arrivals) for chat, arrivals in found.items()}


@pytest.fixture(scope="module")
def chats() -> Iterator[Chats]:
    with ExitStack() as stack:
        yield Chats(
            slack=stack.enter_context(FakeSlack()),
            discord=stack.enter_context(FakeDiscord()),
            teams=stack.enter_context(FakeTeams(flows={"alerts": TEAMS_SIG})),
            google_chat=stack.enter_context(FakeGoogleChat()),
            mattermost=stack.enter_context(FakeMattermost()),
        )


def start_relay(
    chats: Chats, relay_process: type[RelayProcess], folder: Path, database: str
) -> RelayProcess:
    chats.reset()
    config = folder / "relay.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    env = {**chats.env(), "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET, "RELAY_DATABASE_URL": database}
    return relay_process(config, env, folder).start()


def failed_task(n: int) -> bytes:
    """Anchor's sample `task.failed` as the n-th of several: its own id, task and error text."""
    event = json.loads(sample("anchor", "task.failed.json").read_text())
    event["id"] = f"evt_every_chat_{n}"
    event["data"]["task_id"] = f"tsk_every_chat_{n}"
    event["data"]["error"]["message"] = f"Login rejected: round {n}"
    return json.dumps(event).encode()


def rounds(arrivals: list[tuple[float, str]]) -> list[set[int]]:
    """Which of the `failed_task`s each message shows, in arrival order."""
    return [{int(n) for n in re.findall(r"round (\d)", payload)} for _at, payload in arrivals]


def sent(relay: RelayProcess) -> dict[str, int]:
    """Messages relay recorded as delivered, per destination (from its metrics)."""
    text = httpx.get(relay.url + "/metrics", timeout=5).text
    found = re.findall(
        r'^relay_deliveries_total\{destination="([^"]+)",outcome="sent",reason="ok"\} (\S+)$',
        text,
        re.M,
    )
    return {name: int(float(value)) for name, value in found}


def wait_until_sent(relay: RelayProcess, count: int, timeout: float = 60.0) -> None:
    """Until relay recorded `count` deliveries to every chat: nothing is left to send (or to
    send twice) once it has."""
    deadline = time.monotonic() + timeout
    done: Mapping[str, int] = {}
    while time.monotonic() < deadline:
        done = sent(relay)
        if all(done.get(chat, 0) >= count for chat in CHATS):
            return
        time.sleep(0.1)
    raise AssertionError(f"relay did not deliver {count} to every chat in {timeout} s: {done}")


def test_a_failed_task_reaches_every_chat_once_in_its_own_form(
    chats: Chats, relay_process: type[RelayProcess], tmp_path: Path, database: str
) -> None:
    relay = start_relay(chats, relay_process, tmp_path, database)
    answer = post_anchor(relay, sample("anchor", "task.failed.json").read_bytes())
    assert answer.status_code == 202, answer.text
    wait_until_sent(relay, 1)

    # Slack, through the bot token: Block Kit, the broadcast and the user ID as Slack's tokens
    (slack,) = chats.slack.messages
    assert (slack.channel, slack.via) == ("C0ALERTS01", "api")
    assert slack.blocks is not None
    assert slack.blocks[0]["text"]["text"] == "<!here> <@U0ONCALL1>"
    assert slack.blocks[1]["type"] == "header"
    assert slack.blocks[1]["text"]["text"] == ":x: Task failed: invalid credentials"

    # Discord: one embed with the title; allowed_mentions lets exactly the route's names ping
    (discord,) = chats.discord.messages
    assert discord.hook == "alerts"
    assert discord.embeds[0]["title"] == TITLE
    assert discord.content == f"@here <@{DISCORD_USER}>"
    assert discord.allowed_mentions == {"parse": ["everyone"], "users": [DISCORD_USER]}

    # Teams: an Adaptive Card in the attachments wrapper; Teams has no broadcast, the user pings
    (teams,) = chats.teams.posts
    assert check(teams.payload) == []
    (attachment,) = teams.payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert teams.card["type"] == "AdaptiveCard"
    pings = [(tag.entity, tag.element) for tag in teams.pings]
    assert pings == [("alice@contoso.com", "TextBlock")]
    assert teams.card["body"][1]["items"][0]["inlines"][0]["text"] == TITLE

    # Google Chat: cardsV2 under a text line that carries the mentions
    (google,) = chats.google_chat.messages
    assert google.cards is not None and google.cards[0]["card"]["header"]["title"] == TITLE
    assert google.text is not None
    assert google.text.startswith(f"<users/all> <{GOOGLE_USER}> {TITLE}")

    # Mattermost, through the REST API: a post with one attachment; the server notifies these
    (mattermost,) = chats.mattermost.posts
    assert (mattermost.via, mattermost.channel_id) == ("api", MM_ALERTS)
    assert mattermost.message.startswith("@here @alice \u274c **Task failed: invalid credentials")
    assert len(mattermost.attachments) == 1 and "Login rejected" in json.dumps(
        mattermost.attachments
    )
    assert mattermost.mentions == {"@here", "@alice"}

    # each was one request, answered as a success: nothing retried, nothing twice
    assert [r.status for r in chats.discord.requests] == [200]
    assert [r.status for r in chats.teams.requests] == [202]
    assert [r.status for r in chats.google_chat.requests] == [200]
    assert [r.status for r in chats.mattermost.requests] == [201]
    assert [r.method for r in chats.slack.requests if r.method != "auth.test"] == [
        "chat.postMessage"
    ]
    assert sent(relay) == dict.fromkeys(CHATS, 1)
    logs = relay.stdout() + relay.stderr()
    for secret in (TEAMS_SIG, "tok-alerts", chats.google_chat.token("alerts"), MM_TOKEN):
        assert secret not in logs


def wait_for(what: str, done: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll until `done()`; a generous deadline, so that a loaded machine is only slower."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)


def test_a_429_storm_on_discord_delays_discord_alone(
    chats: Chats, relay_process: type[RelayProcess], tmp_path: Path, database: str
) -> None:
    relay = start_relay(chats, relay_process, tmp_path, database)
    # Discord's rate limit answer, twice: 429 with `Retry-After` and the JSON `retry_after`
    storm = (5, 2)  # seconds each 429 asks for; the first is the other chats' window
    chats.discord.script("alerts", [f"ratelimited:{seconds}" for seconds in storm])

    def limited() -> list[DiscordRequest]:
        return [r for r in chats.discord.requests if r.status == 429]

    assert post_anchor(relay, failed_task(1)).status_code == 202
    wait_for("429 from Discord", lambda: len(limited()) >= 1)
    began = limited()[0].received
    for n in (2, 3, 4):  # accepted while Discord is rate limited
        answer = post_anchor(relay, failed_task(n))
        assert answer.status_code == 202, answer.text

    # the other chats get every message, in order, within the time Discord asked relay to wait
    others = [chat for chat in CHATS if chat != "discord"]
    wait_for("message to every other chat", lambda: all(
        len(chats.received()[chat]) >= 4 for chat in others
    ))  # fmt: skip
    received = chats.received()
    for chat in others:
        assert rounds(received[chat]) == [{1}, {2}, {3}, {4}], chat
        assert max(at for at, _payload in received[chat]) < began + storm[0], chat
    assert received["discord"] == []

    # Discord gets them all once the storm is over: in order, once each
    wait_until_sent(relay, 4)
    received = chats.received()
    assert rounds(received["discord"]) == [{1}, {2}, {3}, {4}]
    first, second = limited()
    assert all(at >= second.received + storm[1] for at, _payload in received["discord"])
    # relay asked again no sooner than each Retry-After said
    calls = sorted(chats.discord.requests, key=lambda r: r.received)
    assert [r.status for r in calls] == [429, 429, 200, 200, 200, 200]
    assert calls[1].received - first.received >= storm[0]
    assert calls[2].received - second.received >= storm[1]
    # the others were asked once per message: the storm cost them nothing
    assert sent(relay) == dict.fromkeys(CHATS, 4)
    assert len(chats.teams.requests) == len(chats.google_chat.requests) == 4
    assert len(chats.mattermost.requests) == 4
