"""Routing: ordered rules, globs, conditions, continue, drop, default and mentions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relay.config import load_config, parse_config
from relay.event import Event
from relay.render.formats.slack import mention_text
from relay.routing.router import Router

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [a]}
  deck: {provider: deck, secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]}
destinations:
  alerts: {type: slack, channel: "#alerts"}
  events: {type: slack, channel: "#events"}
  creds: {type: slack, channel: "#creds"}
  audit: {type: console}
routes:
  - name: audit-everything
    match: {}
    to: [audit]
    continue: true
  - name: noise
    match: {source: deck, type: [agent.updated, "source.*"]}
    drop: true
  - name: bad-credentials
    match:
      type: task.failed
      when: [{path: error.type, equals: invalid_credentials}]
    to: [creds]
    mention: [S0123ABCD]
    template: anchor/task.failed
  - name: slow
    match:
      type: "task.*"
      when: [{path: duration_ms, gt: 60000}]
    to: [alerts]
    continue: true
  - name: failures
    match: {type: ["*.failed", "batch.failed"]}
    to: [alerts, events]
    mention: ["@here", U0123ABCD]
default:
  to: [events]
"""


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Router:
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    return Router.from_config(parse_config(CONFIG, path, {}).config)


def ev(type_: str, source: str = "anchor", **data: Any) -> Event:
    return Event(source=source, provider=source, id="evt_1", type=type_, data=data)


def dests(router: Router, event: Event) -> list[str]:
    return [t.destination for t in router.decide(event).targets]


def test_continue_keeps_matching_and_first_stop_decides(router: Router) -> None:
    decision = router.decide(ev("task.failed", error={"type": "timeout"}))
    assert [t.destination for t in decision.targets] == ["audit", "alerts", "events"]
    assert decision.targets[1].mentions == ("@here", "U0123ABCD")
    assert decision.targets[1].route == "failures"


def test_condition_equals_picks_a_rule_with_template_and_group_mention(router: Router) -> None:
    decision = router.decide(ev("task.failed", error={"type": "invalid_credentials"}))
    assert [t.destination for t in decision.targets] == ["audit", "creds"]
    creds = decision.targets[1]
    assert creds.template == "anchor/task.failed"
    assert creds.mentions == ("S0123ABCD",)


def test_numeric_comparison_and_glob(router: Router) -> None:
    # `slow` continues, so the default applies as well
    assert dests(router, ev("task.completed", duration_ms=61000)) == ["audit", "alerts", "events"]
    assert dests(router, ev("task.completed", duration_ms="61000")) == ["audit", "alerts", "events"]
    assert dests(router, ev("task.completed", duration_ms=1000)) == ["audit", "events"]
    # a wrong type never matches a numeric test, and never raises
    assert dests(router, ev("task.completed", duration_ms={"x": 1})) == ["audit", "events"]


def test_drop_rule_stops_but_keeps_earlier_continue_targets(router: Router) -> None:
    decision = router.decide(ev("source.deleted", source="deck"))
    assert decision.dropped_by == "noise"
    assert [t.destination for t in decision.targets] == ["audit"]


def test_default_applies_when_no_rule_decided(tmp_path: Path) -> None:
    text = CONFIG.replace("match: {}\n    to: [audit]", "match: {type: nothing}\n    to: [audit]")
    router = Router.from_config(parse_config(text, tmp_path / "c.yaml", {}).config)
    decision = router.decide(ev("identity.authenticated"))
    assert [t.destination for t in decision.targets] == ["events"]
    assert decision.targets[0].route == "default"
    assert "no rule matched" in decision.trace[-1].reason


@pytest.mark.parametrize(
    ("condition", "data", "expected"),
    [
        (
            {"path": "error.type", "one_of": ["timeout", "agent_error"]},
            {"error": {"type": "timeout"}},
            True,
        ),
        ({"path": "error.type", "one_of": ["timeout"]}, {"error": "timeout"}, False),
        (
            {"path": "error.message", "matches": "(?i)captcha"},
            {"error": {"message": "CAPTCHA shown"}},
            True,
        ),
        ({"path": "error.message", "matches": "captcha"}, {"error": {"message": None}}, False),
        ({"path": "recording_url", "exists": True}, {"recording_url": "https://x"}, True),
        ({"path": "recording_url", "exists": True}, {"recording_url": None}, False),
        ({"path": "recording_url", "exists": False}, {}, True),
        ({"path": "artifacts.0.size", "gte": 100}, {"artifacts": [{"size": 100}]}, True),
        ({"path": "artifacts.0.size", "lt": 100}, {"artifacts": []}, False),
        ({"path": "failed_requests", "lte": 0}, {"failed_requests": True}, False),
        ({"path": "status", "not_equals": "failed"}, {"status": "completed"}, True),
    ],
)
def test_conditions(
    tmp_path: Path, condition: dict[str, Any], data: dict[str, Any], expected: bool
) -> None:
    import yaml

    config = {
        "sources": {"anchor": {"provider": "anchor", "secrets": ["a"]}},
        "destinations": {"hit": {"type": "console"}},
        "routes": [{"match": {"when": [condition]}, "to": ["hit"]}],
    }
    router = Router.from_config(
        parse_config(yaml.safe_dump(config), tmp_path / "c.yaml", {}).config
    )
    assert (dests(router, ev("x.y", **data)) == ["hit"]) is expected


def test_explain_trace_says_why_rules_did_not_match(router: Router) -> None:
    trace = router.decide(ev("identity.authenticated", source="anchor")).trace
    reasons = {t.route: t.reason for t in trace}
    assert reasons["noise"] == "source 'anchor' not in ['deck']"
    assert (
        reasons["failures"]
        == "type 'identity.authenticated' matches none of ['*.failed', 'batch.failed']"
    )


def test_example_config_routes_attention_events_to_alerts() -> None:
    router = Router.from_config(load_config(ROOT / "config.example.yaml", env={}).config)
    attention = {
        "anchor": [
            "task.failed",
            "session.failed",
            "batch.failed",
            "intervention.requested",
            "identity.authentication_failed",
        ],
        "deck": [
            "credential.invalid",
            "session.failed",
            "task_run.failed",
            "task_run.interaction_required",
            "task_run.pending",
            "event_destination.deactivated",
        ],
        "tabstack": ["run.failed"],
    }
    for source, types in attention.items():
        for type_ in types:
            assert dests(router, ev(type_, source=source)) == ["alerts"], (source, type_)
    for source, type_ in [
        ("anchor", "task.completed"),
        ("deck", "task_run.completed"),
        ("tabstack", "run.completed"),
        ("tabstack", "run.started"),
    ]:
        assert dests(router, ev(type_, source=source)) == ["events"], (source, type_)
    assert router.decide(ev("agent.updated", source="deck")).dropped_by == "noise"
    human = router.decide(ev("intervention.requested"))
    assert human.targets[0].mentions == ("@here",)


def test_mentions_in_slacks_form() -> None:
    assert mention_text(["@here", "@channel", "U1AB", "W2CD", "S3EF"]) == (
        "<!here> <!channel> <@U1AB> <@W2CD> <!subteam^S3EF>"
    )
    assert mention_text([]) is None
