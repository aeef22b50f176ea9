"""Config loading: interpolation, strict models, and the exact error messages users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import load_config, parse_config
from relay.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BAD = sorted((ROOT / "tests" / "configs" / "bad").glob("*.yaml"))


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_names_the_yaml_path(path: Path) -> None:
    expected = path.with_suffix(".expected").read_text().strip().replace("{file}", str(path))
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert "\n".join(caught.value.errors) == expected


def test_example_config_loads_without_any_environment() -> None:
    loaded = load_config(ROOT / "config.example.yaml", env={})
    config = loaded.config
    assert set(config.sources) == {"anchor", "deck", "tabstack"}
    assert config.slack.token is None  # dry-run
    assert config.slack.api_url == "https://slack.com/api/"
    assert loaded.templates_dir == (ROOT / "templates").resolve()


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
    assert caught.value.errors == [
        "sources.anchor.colour: unknown key",
        "destinations.alerts.type: unknown type 'pager' (expected 'slack', 'webhook', 'console')",
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
