"""A `type: teams` destination in the config, and what `relay check` and `relay render` say of
it: conversations that degrade, mentions with no form in Teams, unusual URLs (warned, never
refused), Block Kit templates it cannot show (an error); never the URL itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import ROOT, sample

from relay.cli import main
from relay.config import TeamsDestination, parse_config
from relay.errors import ConfigError

OFFICIAL = (
    "https://prod-12.westeurope.logic.azure.com:443/workflows/0a1b/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SECRETsig123"
)
POWER_PLATFORM = (
    "https://default0a1b.2c.environment.api.powerplatform.com:443/powerautomate/automations/"
    "direct/workflows/0a1b/triggers/manual/paths/invoke?api-version=1&sv=1.0&sig=SECRETsig123"
)
CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [test-secret]}
destinations:
  team: {type: teams, workflow_url: "%(url)s"}
routes:
  - name: sessions
    match: {source: anchor, type: "task.*"}
    to: [team]
    thread: auto
    mention: ["@here", "teams:alice@contoso.com|Alice Smith", U0123ABCD]
  - name: flaky
    match: {source: anchor, type: session.failed}
    to: [team]
    repeat: {key: [data.session_id], interval: 1h}
%(extra)s
"""


def write(tmp_path: Path, url: str = OFFICIAL, extra: str = "") -> Path:
    path = tmp_path / "relay.yaml"
    path.write_text(CONFIG % {"url": url, "extra": extra})
    return path


def checked(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check", "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_teams_destination_takes_a_secret_url_or_none(tmp_path: Path) -> None:
    loaded = parse_config(CONFIG % {"url": OFFICIAL, "extra": ""}, tmp_path / "c.yaml", {})
    team = loaded.config.destinations["team"]
    assert isinstance(team, TeamsDestination) and team.workflow_url is not None
    assert team.workflow_url.get_secret_value() == OFFICIAL
    assert "SECRETsig123" not in repr(loaded)
    text = CONFIG % {"url": "${TEAMS_WORKFLOW_URL:-}", "extra": ""}
    unset = parse_config(text, tmp_path / "c.yaml", {}).config.destinations["team"]
    assert isinstance(unset, TeamsDestination) and unset.workflow_url is None


def test_a_workflow_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG % {"url": "ftp://x/SECRETsig", "extra": ""}, tmp_path / "c.yaml", {})
    assert caught.value.detailed == ["destinations.team.workflow_url: not an http(s) URL"]
    assert "SECRETsig" not in str(caught.value)


def test_check_says_what_teams_cannot_do_and_never_shows_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = checked(write(tmp_path), capsys)
    assert code == 0, out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: routes[0].thread: destination 'team' (teams) cannot reply in a thread: its"
        " messages are posted one after the other",
        "warning: routes[0].thread: destination 'team' (teams) cannot update a message in"
        " place: each change of state is posted anew",
        "warning: routes[0].mention[0]: '@here' has no form in teams (destination 'team'):"
        " left out of its messages",
        "warning: routes[0].mention[2]: 'U0123ABCD' has no form in teams (destination 'team'):"
        " left out of its messages",
        "warning: routes[1].repeat: destination 'team' (teams) cannot update a message in"
        " place: each repeat is posted",
    ]
    assert "SECRETsig123" not in out and "logic.azure.com" not in out


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (OFFICIAL, []),
        (POWER_PLATFORM, []),
        (
            "https://relay-proxy.example/teams?sig=SECRETsig123",
            ["workflow_url's host is not Power Automate's (*.logic.azure.com,"
             " *.environment.api.powerplatform.com): fine for a proxy or a test server"],
        ),
        (
            "http://prod-1.westus.logic.azure.com/workflows/x?sig=SECRETsig123",
            ["workflow_url is plain http: the URL, its signature included, crosses the network"
             " in clear"],
        ),
        (
            "https://contoso.webhook.office.com/webhookb2/SECRETsig123/IncomingWebhook/x/y",
            ["workflow_url is an Office 365 connector webhook, which Microsoft retired: make a"
             " Workflows webhook instead (see the README, Chats: Microsoft Teams)",
             "workflow_url has no sig= parameter: the flow answers 401 unless its trigger lets"
             " anyone post; copy the whole URL from the trigger"],
        ),
        (
            OFFICIAL.replace("&sig=SECRETsig123", ""),
            ["workflow_url has no sig= parameter: the flow answers 401 unless its trigger lets"
             " anyone post; copy the whole URL from the trigger"],
        ),
    ],
)  # fmt: skip
def test_check_warns_of_an_unusual_url_but_takes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, expected: list[str]
) -> None:
    code, out = checked(write(tmp_path, url), capsys)
    assert code == 0, out
    shown = [
        line.removeprefix("warning: destinations.team: ")
        for line in out.splitlines()
        if line.startswith("warning: destinations.team:")
    ]
    assert shown == expected
    assert "SECRETsig123" not in out


def test_check_refuses_a_block_kit_template_for_teams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    templates = tmp_path / "templates" / "anchor"
    templates.mkdir(parents=True)
    (templates / "task.failed.j2").write_text('{"text": "raw block kit", "blocks": []}')
    code, out = checked(write(tmp_path, extra="templates: ./templates"), capsys)
    assert code == 1
    assert (
        "error: sessions: template 'anchor/task.failed' renders Slack Block Kit, which"
        " destination 'team' (teams) cannot show" in out
    )


def test_render_shows_the_adaptive_card_teams_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = sample("anchor", "task.failed.json")
    assert main(["render", "--config", str(write(tmp_path)), str(event)]) == 0
    out = capsys.readouterr().out
    (message,) = json.loads(out)["messages"]
    assert (message["destination"], message["to"]) == ("team", "teams workflow")
    card = message["payload"]["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0] == {"type": "TextBlock", "text": "<at>Alice Smith</at>", "wrap": True}
    assert "SECRETsig123" not in out


def test_the_example_config_still_checks_with_its_teams_destination_commented_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = (ROOT / "config.example.yaml").read_text()
    assert "type: teams" in text and "TEAMS_WORKFLOW_URL" in text
    assert main(["check", "--config", str(ROOT / "config.example.yaml")]) == 0
    assert "ok:" in capsys.readouterr().out
