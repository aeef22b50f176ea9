"""The console in a real browser: Debian's chromium driven by Playwright (the system binary,
never Playwright's own download) against `relay serve` as a real process over HTTP, with the
fake Slack. It logs in, opens the dead letters page, replays a dead letter (and the fake Slack
receives it), creates nothing it should not; filters the events list, sees new events join it
without a reload (keeping the filters), opens an event, creates and expires a silence; and
leaves screenshots in the test's tmp folder (`RELAY_DOCS_SCREENSHOTS=1` also writes the event
page, from the shipped samples, to `docs/console-event.png`). No console error and no
Content-Security-Policy violation may happen on any page. Where no chromium is installed the
tests skip with one loud line (`.ci/run` installs it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakeslack import FakeSlack
from harness import RelayProcess, post_anchor, sample
from signing import ADMIN_TOKEN, ANCHOR_SECRET, SLACK_TOKEN

CHROMIUM = os.environ.get("RELAY_TEST_CHROMIUM", "/usr/bin/chromium")
if not Path(CHROMIUM).is_file():
    pytest.skip(
        f"BROWSER TESTS SKIPPED: no chromium at {CHROMIUM} (apt-get install -y chromium)",
        allow_module_level=True,
    )

from playwright.sync_api import ConsoleMessage, Page, expect, sync_playwright  # noqa: E402

HOSTILE_ID = 'evt_<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">'
CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
slack: {token: "${SLACK_BOT_TOKEN}", api_url: "${SLACK_API_URL}"}
destinations:
  alerts: {type: slack, channel: "#browser-alerts"}
default: {to: [alerts]}
"""
# records every CSP violation the page reports (an init script runs outside the page's CSP)
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(params=["sqlite", "postgres"])
def relay(
    request: pytest.FixtureRequest,
    slack: FakeSlack,
    relay_process: type[RelayProcess],
    tmp_path: Path,
) -> Iterator[RelayProcess]:
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG)
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    if request.param == "postgres":
        from pgschema import fresh_schema

        with fresh_schema() as url:
            yield relay_process(config, {**env, "RELAY_DATABASE_URL": url}, tmp_path).start()
    else:
        url = f"sqlite:///{tmp_path}/relay.db"
        yield relay_process(config, {**env, "RELAY_DATABASE_URL": url}, tmp_path).start()


def _dead_letter(relay: RelayProcess, slack: FakeSlack) -> None:
    """A failed task whose id is hostile, refused by Slack for good: one dead letter."""
    slack.script("browser-alerts", ["channel_not_found"])
    event = json.loads(sample("anchor", "task.failed.json").read_bytes())
    event["id"] = HOSTILE_ID
    answer = post_anchor(relay, json.dumps(event).encode())
    assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if slack.requests:
            time.sleep(0.3)  # the refusal is recorded right after the answer
            return
        time.sleep(0.05)
    raise AssertionError("relay never tried to deliver the event")


class Watch:
    """What went wrong in the browser: console errors, page errors, CSP violations."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.add_init_script(WATCH_CSP)
        self.page = page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def check(self) -> None:
        violations: Any = self.page.evaluate("window.__csp || []")
        assert violations == [], violations
        assert self.page.evaluate("window.__pwned") is None
        assert self.problems == []


def test_log_in_and_replay_a_dead_letter_in_a_browser(
    relay: RelayProcess, slack: FakeSlack, tmp_path: Path
) -> None:
    _dead_letter(relay, slack)
    assert slack.messages == []
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            watch = Watch(page)
            page.goto(relay.url + "/console")
            expect(page).to_have_url(relay.url + "/console/login")
            page.screenshot(path=shots / "1-login.png")
            page.fill("#token", "not the token")
            page.click("button:has-text('Log in')")
            expect(page.get_by_role("alert")).to_have_text("That is not the admin token.")
            # the refused login is a 401 page, which chromium reports; nothing else may be
            assert [p for p in watch.problems if "401" not in p] == []
            watch.problems.clear()
            page.fill("#token", ADMIN_TOKEN)
            page.click("button:has-text('Log in')")
            expect(page).to_have_url(relay.url + "/console")
            expect(page.locator("h1")).to_have_text("Overview")
            expect(page.locator("table.backlog tbody tr")).to_have_count(1)
            row = page.locator("table.backlog tbody tr").first.locator("td")
            assert row.all_inner_texts()[:4] == ["alerts", "0", "0", "1"]
            expect(page.locator("svg.chart:not(.columns) rect")).to_have_count(1)
            page.screenshot(path=shots / "2-overview.png", full_page=True)
            watch.check()

            page.click("nav >> text=Dead letters")
            expect(page).to_have_url(relay.url + "/console/dead")
            letter = page.locator("table.dead tbody tr")
            expect(letter).to_have_count(1)
            expect(letter.locator("code").first).to_have_text(HOSTILE_ID)  # as text
            assert page.locator("main script, main img").count() == 0
            expect(letter).to_contain_text("channel")
            page.screenshot(path=shots / "3-dead-letters.png", full_page=True)
            watch.check()

            letter.locator("input[type=checkbox]").check()
            page.click("button:has-text('Replay selected')")
            expect(page.locator("h1")).to_have_text("Replay 1 dead letter(s)?")
            page.screenshot(path=shots / "4-confirm.png", full_page=True)
            assert slack.messages == []  # nothing before the confirmation
            page.click("button:has-text('Yes, replay 1')")
            expect(page.get_by_role("status")).to_contain_text("Replayed 1 dead letter(s).")
            (message,) = slack.wait_for_messages(1, timeout=20)
            assert message.channel == "C0ALERTS01"
            page.reload()
            expect(page.locator("table.dead tbody tr")).to_have_count(0)
            page.screenshot(path=shots / "5-replayed.png", full_page=True)
            watch.check()

            # the events list shows the hostile id as text too
            page.click("nav >> text=Events")
            expect(page.locator("table.events tbody tr")).to_have_count(1)
            expect(page.locator("table.events tbody tr code")).to_have_text(HOSTILE_ID)
            assert page.locator("main img").count() == 0
            watch.check()

            page.click("button:has-text('Log out')")
            expect(page).to_have_url(relay.url + "/console/login")
            page.goto(relay.url + "/console/dead")
            expect(page).to_have_url(relay.url + "/console/login")
            watch.check()
        finally:
            browser.close()
    time.sleep(1.0)  # anything extra would have arrived by now
    assert len(slack.messages) == 1  # the replay posted the one message, once
    assert httpx.get(relay.url + "/readyz").status_code == 200
    print(f"console screenshots: {shots}")
    assert sorted(f.name for f in shots.iterdir()) == [
        "1-login.png", "2-overview.png", "3-dead-letters.png", "4-confirm.png", "5-replayed.png"
    ]  # fmt: skip


DOCS = Path(__file__).resolve().parent.parent / "docs"


def _post_sample(relay: RelayProcess, name: str, event_id: str) -> None:
    event = json.loads(sample("anchor", name).read_bytes())
    event["id"] = event_id
    answer = post_anchor(relay, json.dumps(event).encode())
    assert answer.status_code == 202, answer.text


def _log_in(page: Page, relay: RelayProcess) -> None:
    page.goto(relay.url + "/console/login")
    page.fill("#token", ADMIN_TOKEN)
    page.click("button:has-text('Log in')")
    expect(page).to_have_url(relay.url + "/console")


def test_events_an_event_and_silences_in_a_browser(
    relay: RelayProcess, slack: FakeSlack, tmp_path: Path
) -> None:
    """From the shipped samples: nothing hostile, so its event page is the README's picture."""
    _post_sample(relay, "task.failed.json", "evt_01HXJ8TASK_FAILED")
    _post_sample(relay, "task.completed.json", "evt_01HXJ8TASK_COMPLETED")
    _post_sample(relay, "session.completed.json", "evt_01HXJ8SESSION_DONE")
    slack.wait_for_messages(3, timeout=20)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            watch = Watch(page)
            _log_in(page, relay)
            expect(page.locator("#last-24h h2")).to_have_text("Last 24 h: 3 event(s)")
            hours = page.locator("#last-24h svg.columns rect").count()
            assert hours in (1, 2)  # one hour's column (two if the posts crossed an hour)
            page.screenshot(path=shots / "1-overview.png", full_page=True)
            watch.check()

            # the list, then filtered through its form: the URL holds the filter
            page.click("nav >> text=Events")
            rows = page.locator("table.events tbody tr")
            expect(rows).to_have_count(3)
            page.fill("input[name=type]", "task.*")
            page.click("button:has-text('Filter')")
            expect(page).to_have_url(relay.url + "/console/events?type=task.%2A")
            expect(rows).to_have_count(2)
            expect(page.locator("#live")).to_have_text("Watching for new events…")
            page.screenshot(path=shots / "2-events.png", full_page=True)
            # new events join the list without a reload, the filter kept: only the task
            page.evaluate("window.__stayed = true")
            _post_sample(relay, "session.failed.json", "evt_new_session")
            _post_sample(relay, "task.cancelled.json", "evt_new_task")
            expect(rows).to_have_count(3, timeout=15_000)
            expect(rows.first).to_contain_text("evt_new_task")
            expect(page.locator("#live")).to_have_text("1 new event(s) appeared above.")
            assert page.evaluate("window.__stayed") is True  # the same page: no reload
            expect(page.locator("input[name=type]")).to_have_value("task.*")
            page.screenshot(path=shots / "3-new-events.png", full_page=True)
            watch.check()

            # one event: the trace, the message as the chat shows it beside its payload
            page.click("a:has-text('evt_01HXJ8TASK_FAILED')")
            expect(page.locator("h1")).to_have_text("anchor task.failed")
            expect(page.locator("pre.trace")).to_contain_text("anchor task.failed")
            message = page.locator("section.message").first
            expect(message.locator(".chat-title")).to_contain_text("Task failed")
            expect(message.locator("pre.json")).to_contain_text('"blocks"')
            expect(message.locator("ol.timeline li")).to_have_count(1)
            expect(message.locator("ol.timeline li")).to_contain_text("sent")
            page.screenshot(path=shots / "4-event.png", full_page=True)
            if os.environ.get("RELAY_DOCS_SCREENSHOTS") == "1":
                DOCS.mkdir(exist_ok=True)
                page.screenshot(path=DOCS / "console-event.png", full_page=True)
            watch.check()

            # a silence: previewed, created, listed, expired
            page.click("nav >> text=Silences")
            expect(page.locator("main")).to_contain_text("No active silence.")
            page.fill("#matchers", "type=task.failed")
            page.fill("#duration", "2h")
            page.fill("#comment", "maintenance window")
            page.click("button:has-text('Preview')")
            expect(page.locator("main h2").last).to_have_text(
                "It would have matched 1 recent message(s)"
            )
            assert relay_silences(relay) == []
            page.screenshot(path=shots / "5-silence-preview.png", full_page=True)
            page.click("button:has-text('Create silence')")
            expect(page.get_by_role("status")).to_contain_text("created")
            expect(page.locator("table.silences tbody tr")).to_have_count(1)
            expect(page.locator("table.silences .state")).to_have_text("active")
            (made,) = relay_silences(relay)
            assert made["created_by"] == "console" and made["comment"] == "maintenance window"
            page.screenshot(path=shots / "6-silence.png", full_page=True)
            page.click("button:has-text('Expire')")
            expect(page.get_by_role("status")).to_contain_text("expired")
            expect(page.locator("main")).to_contain_text("No active silence.")
            assert relay_silences(relay) == []
            watch.check()
        finally:
            browser.close()
    print(f"console screenshots: {shots}")
    assert len(list(shots.iterdir())) == 6


def relay_silences(relay: RelayProcess) -> list[dict[str, Any]]:
    answer = httpx.get(
        relay.url + "/api/silences", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert answer.status_code == 200
    found: list[dict[str, Any]] = answer.json()["silences"]
    return found
