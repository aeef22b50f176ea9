"""Config loading: interpolation, strict models, and the exact error messages users see."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relay.config import load_config, parse_config
from relay.config.values import MENTION_FORMS
from relay.errors import ConfigError
from relay.ops.check import check
from relay.runtime import build_runtime

ROOT = Path(__file__).resolve().parent.parent
BAD = sorted((ROOT / "tests" / "configs" / "bad").glob("*.yaml"))


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_names_the_yaml_path(path: Path) -> None:
    """`.expected` is what `relay check` prints, `.public` what HTTP answers and logs say."""
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    for form, problems in (("expected", caught.value.detailed), ("public", caught.value.public)):
        expected = path.with_suffix(f".{form}").read_text().strip().replace("{file}", str(path))
        assert "\n".join(problems) == expected, form


def test_example_config_loads_without_any_environment() -> None:
    loaded = load_config(ROOT / "config.example.yaml", env={})
    config = loaded.config
    assert set(config.sources) == {"anchor", "deck", "tabstack"}
    assert config.slack.token is None  # dry-run
    assert config.slack.api_url == "https://slack.com/api/"
    assert loaded.templates_dir == (ROOT / "templates").resolve()


def test_the_example_configs_other_chats_work_once_uncommented(tmp_path: Path) -> None:
    """Each chat's destination is in config.example.yaml, commented out (so that the example
    runs without credentials), and loads and checks cleanly once uncommented and set."""
    text = (ROOT / "config.example.yaml").read_text()
    blocks = re.findall(r"^  # ([a-z-]+):\n((?:  #   .*\n)+)", text, re.M)
    names = [name for name, _block in blocks]
    for name, block in blocks:
        text = text.replace(block, re.sub(r"^  # ", "  ", block, flags=re.M))
        text = text.replace(f"  # {name}:\n", f"  {name}:\n")
    text = text.replace("default:\n  to: [events]", f"default:\n  to: [events, {', '.join(names)}]")
    (tmp_path / "templates").mkdir()
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    env = {
        "ANCHOR_WEBHOOK_SECRET": "secret",
        "DECK_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/secret",
        "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/123456/secret",
        "TEAMS_WORKFLOW_URL": "https://x.logic.azure.com/workflows/1/triggers/manual/paths/"
        "invoke?api-version=2016-06-01&sig=secret",
        "GOOGLE_CHAT_WEBHOOK_URL": "https://chat.googleapis.com/v1/spaces/S/messages?key=k&token=t",
        "MATTERMOST_TOKEN": "secret",
        "MATTERMOST_WEBHOOK_URL": "https://mm.example.com/hooks/secretkey",
    }
    loaded = load_config(path, env=env)
    chats = {d.type for name, d in loaded.config.destinations.items() if name in names}
    assert chats == {"webhook", "discord", "teams", "google_chat", "mattermost"}
    assert list(loaded.config.default.to) == ["events", *names]
    report = check(build_runtime(loaded))
    assert (report.errors, report.warnings) == ([], [])


def test_interpolation_fills_values_and_defaults() -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_API_URL": "http://127.0.0.1:9/api"}
    loaded = load_config(ROOT / "config.example.yaml", env=env)
    slack = loaded.config.slack
    assert slack.token is not None and slack.token.get_secret_value() == "xoxb-test-token"
    assert slack.api_url == "http://127.0.0.1:9/api/"
    tabstack = loaded.config.sources["tabstack"]
    assert tabstack.base_url == "https://api.tabstack.ai/v1"


def test_dollar_dollar_is_a_literal_dollar(tmp_path: Path) -> None:
    text = """
sources:
  s: {provider: generic, token: "pa$$word"}
destinations:
  c: {type: console}
"""
    loaded = parse_config(text, tmp_path / "c.yaml", {})
    token = loaded.config.sources["s"].token
    assert token.get_secret_value() == "pa$word"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """
sources:
  anchor: {provider: anchor, secrets: [a], colour: red}
destinations:
  alerts: {type: pager, channel: "#a"}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "c.yaml", {})
    assert caught.value.detailed == [
        "sources.anchor.colour: unknown key",
        "destinations.alerts.type: unknown type 'pager' (expected 'slack', 'webhook', 'console',"
        " 'teams', 'google_chat', 'discord', 'mattermost')",
    ]


def test_secrets_never_appear_in_errors_or_repr(tmp_path: Path) -> None:
    text = """
sources:
  deck: {provider: deck, secrets: [hunter2-not-whsec]}
destinations:
  alerts: {type: slack, channel: "#a"}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "c.yaml", {})
    assert "hunter2" not in str(caught.value)
    loaded = load_config(ROOT / "config.example.yaml", env={"SLACK_BOT_TOKEN": "xoxb-sekrit"})
    assert "xoxb-sekrit" not in repr(loaded)


def test_durations_accept_units(tmp_path: Path) -> None:
    text = """
sources:
  anchor: {provider: anchor, secrets: [a], tolerance: 2m}
destinations:
  c: {type: console}
store: {dedup_ttl: 48h}
"""
    config = parse_config(text, tmp_path / "c.yaml", {}).config
    assert config.sources["anchor"].tolerance == 120.0
    assert config.store.dedup_ttl == 172800.0


SECRET = "xoxb-1234-WrongField"
# a secret typed into the wrong field, through an environment variable: the public form names
# the path and what was expected; the detailed form shows `${VAR}` where the value would be
BASE = (
    "sources: {anchor: {provider: anchor, secrets: [s]}}\ndestinations: {events: {type: console}}\n"
)
WRONG_FIELD = [
    (
        BASE + "slack: {timeout: '${TOKEN}'}",
        "slack.timeout: not a duration (expected e.g. 30s, 5m, 24h)",
        "slack.timeout: '${TOKEN}' is not a duration (expected e.g. 30s, 5m, 24h)",
    ),
    (
        BASE + "pacing: {rate: '${TOKEN}'}",
        "pacing.rate: Input should be a valid number, unable to parse string as a number",
        "pacing.rate: Input should be a valid number, unable to parse string as a number "
        "(got '${TOKEN}')",
    ),
    (
        BASE + "routes: [{to: ['${TOKEN}']}]",
        "routes[0].to[0]: unknown destination (known: events)",
        "routes[0].to[0]: unknown destination '${TOKEN}' (known: events)",
    ),
    (
        BASE + "routes: [{to: [events], mention: 'Bearer ${TOKEN}'}]",
        f"routes[0].mention: not a mention (expected {MENTION_FORMS})",
        f"routes[0].mention: 'Bearer ${{TOKEN}}' is not a mention (expected {MENTION_FORMS})",
    ),
    (
        BASE + "routes: [{to: [events], match: {source: [anchor, '${TOKEN}']}}]",
        "routes[0].match.source[1]: unknown source (known: anchor)",
        "routes[0].match.source[1]: unknown source '${TOKEN}' (known: anchor)",
    ),
    (
        BASE + "routes: [{to: [events], thread: {key: '${TOKEN}'}}]",
        "routes[0].thread.key: not a key (expected `auto`, a dotted path such as "
        "data.session_id, or a Jinja expression such as '{{ data.task_id }}')",
        "routes[0].thread.key: '${TOKEN}' is not a key (expected `auto`, a dotted path such as "
        "data.session_id, or a Jinja expression such as '{{ data.task_id }}')",
    ),
    (
        BASE + "routes: [{to: [events], mute_during: ['${TOKEN}']}]",
        "routes[0].mute_during[0]: unknown time interval (known: none defined)",
        "routes[0].mute_during[0]: unknown time interval '${TOKEN}' (known: none defined)",
    ),
    (
        BASE + "slack: {api_url: '${TOKEN}'}",
        "slack.api_url: not an http(s) URL",
        "slack.api_url: '${TOKEN}' is not an http(s) URL",
    ),
    (
        "sources: {anchor: {provider: '${TOKEN}'}}\ndestinations: {events: {type: console}}",
        "sources.anchor.provider: unknown provider (expected 'anchor', 'deck', 'tabstack', "
        "'generic')",
        "sources.anchor.provider: unknown provider '${TOKEN}' (expected 'anchor', 'deck', "
        "'tabstack', 'generic')",
    ),
]


@pytest.mark.parametrize(("text", "public", "detailed"), WRONG_FIELD)
def test_a_value_from_the_environment_is_never_shown(
    tmp_path: Path, text: str, public: str, detailed: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "c.yaml", {"TOKEN": SECRET})
    assert (caught.value.public, caught.value.detailed) == ([public], [detailed])
    assert "WrongField" not in str(caught.value)


def test_a_name_that_is_not_a_name_is_shown_by_its_number_in_public(tmp_path: Path) -> None:
    text = """
sources:
  anchor: {provider: anchor, secrets: [s]}
  whsec_Pasted+Here==: {provider: nope}
destinations:
  events: {type: console}
  xoxb-1234-PastedHere: {type: console}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "c.yaml", {})
    assert caught.value.public == [
        "sources.#2.provider: unknown provider (expected 'anchor', 'deck', 'tabstack', 'generic')",
        "destinations: name #2 must be lower-case letters, digits, - or _",
    ]
    assert "Pasted" not in str(caught.value)
    # the operator's own file, on the operator's terminal: the names as written
    assert caught.value.detailed == [
        "sources.whsec_Pasted+Here==.provider: unknown provider 'nope' (expected 'anchor', "
        "'deck', 'tabstack', 'generic')",
        "destinations: name 'xoxb-1234-PastedHere' must be lower-case letters, digits, - or _",
    ]


def test_yaml_that_does_not_parse_is_located_without_its_text(tmp_path: Path) -> None:
    text = "sources:\n  anchor: {provider: anchor, secrets: [xoxb-1234-Unclosed\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "c.yaml", {})
    assert caught.value.public == [f"{tmp_path / 'c.yaml'}: not valid YAML (line 3, column 1)"]
    assert "Unclosed" in caught.value.detailed[0]  # PyYAML quotes the line, for the terminal


def test_the_pace_of_a_key_is_its_destinations_own_else_the_configs_else_the_default() -> None:
    from relay.runtime import build_runtime

    text = """
sources: {anchor: {provider: anchor, secrets: [s]}}
destinations:
  own: {type: slack, channel: "#a", pacing: {rate: 0.5, burst: 2}}
  plain: {type: slack, channel: "#b"}
  same: {type: slack, channel: "#a"}
default: {to: [own, plain, same]}
"""
    runtime = build_runtime(parse_config(text, Path("relay.yaml"), {"SLACK_BOT_TOKEN": "x"}))
    assert runtime.paces == {"slack:a": (0.5, 2.0), "slack:b": (1.0, 3.0)}
    given = build_runtime(
        parse_config(
            text + "pacing: {rate: 5, burst: 5}\n", Path("relay.yaml"), {"SLACK_BOT_TOKEN": "x"}
        )
    )
    assert given.paces == {"slack:a": (0.5, 2.0), "slack:b": (5.0, 5.0)}
