"""The built-in templates: every event type of every platform renders without falling back,
carries more than the provider's one-line text, and matches its golden file.

Cases come from the sample events shipped with relay (relay/samples/{anchor,deck}/*.json,
verbatim examples where the platforms' documentation gives one) and, for a type without a
sample, from the inline ones below. Tabstack story events are built inline with the data
described in the story contract.

Golden files: tests/golden/<provider>/<case>.json hold the rendered {text, blocks}. After an
intended change to a template, regenerate them and review the diff:

    RELAY_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_templates.py
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from harness import samples
from slackview import SlackRenderer as Renderer

from relay.event import Event, parse_time
from relay.render.renderer import FALLBACK

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "relay" / "samples"  # one example event of every type, shipped for `relay check`
GOLDEN = ROOT / "tests" / "golden"
PROVIDERS = ("anchor", "deck", "tabstack")  # golden/<provider>/: Slack's Block Kit
UPDATE = os.environ.get("RELAY_UPDATE_GOLDEN") == "1"

ANCHOR_TYPES = [
    "task.completed", "task.failed", "task.cancelled", "task.healed",
    "session.completed", "session.failed", "session.recording.ready",
    "batch.completed", "batch.failed", "intervention.requested", "intervention.resolved",
    "identity.authenticated", "identity.authentication_failed",
]  # fmt: skip
DECK_TYPES = [
    "agent.created", "agent.updated", "agent.deleted",
    "source.created", "source.updated", "source.deleted",
    "credential.created", "credential.unverified", "credential.verified", "credential.invalid",
    "credential.deleted",
    "session.queued", "session.running", "session.idle", "session.completing",
    "session.completed", "session.failed",
    "task.created", "task.updated", "task.deleted",
    "task_run.queued", "task_run.running", "task_run.pending", "task_run.completed",
    "task_run.failed", "task_run.canceling", "task_run.canceled", "task_run.interaction_required",
    "storage.created", "storage.deleted",
    "event_destination.activated", "event_destination.deactivated",
]  # fmt: skip
TABSTACK_TYPES = ["run.started", "run.progress", "run.completed", "run.failed"]

TABSTACK_INLINE: dict[str, tuple[str, dict[str, Any]]] = {
    "run.started": (
        "run_success:2",
        {"run_id": "run_success", "task": "Find the product price",
         "url": "https://example.com/product"},
    ),
    "run.progress": (
        "run_success:progress:1",
        {
            "run_id": "run_success", "task": "Find the product price",
            "url": "https://example.com/product", "steps": 3, "events": 9,
            "pages": [{"title": "Example Store", "url": "https://example.com/"},
                      {"title": "Acme Widget - Example Store", "url": "https://example.com/product"}],
            "last_url": "https://example.com/product", "last_title": "Acme Widget - Example Store",
            "status_message": "Locating the price element", "plan": None,
        },
    ),
    "run.completed": (
        "run_success:10",
        {
            "run_id": "run_success", "task": "Find the product price",
            "url": "https://example.com/product", "success": True, "outcome": "completed",
            "final_answer": "The product costs $19.99", "error": None, "actions": 3,
            "iterations": None, "duration_ms": None, "steps": 1, "events": 12,
            "pages": [{"title": "Acme Widget - Example Store", "url": "https://example.com/product"}],
            "last_url": "https://example.com/product", "last_title": "Acme Widget - Example Store",
            "status_message": "Task plan created",
            "plan": "1. Navigate to product page\n2. Locate price element\n3. Extract price value",
            "extracted": {"price": "$19.99", "currency": "USD"},
        },
    ),
    "run.failed": (
        "run_error:2",
        {
            "run_id": "run_error", "task": "Log in and download the invoice",
            "url": "https://billing.example.com", "success": False, "outcome": "error",
            "final_answer": None,
            "error": {"code": "TASK_FAILED", "message": "Login form rejected the credentials"},
            "actions": 4, "iterations": 2, "duration_ms": 3120, "steps": 0, "events": 5,
            "pages": [{"title": "Sign in", "url": "https://billing.example.com/login"}],
            "last_url": "https://billing.example.com/login", "last_title": "Sign in",
            "status_message": None, "plan": None, "extracted": None,
        },
    ),
}  # fmt: skip


def event_from_envelope(provider: str, body: dict[str, Any], source: str | None = None) -> Event:
    """An Anchor or Deck webhook body as the providers normalize it (no signature involved)."""
    created = body.get("created_at") if provider == "deck" else body.get("created")
    return Event(
        source=source or provider,
        provider=provider,
        id=str(body["id"]),
        type=str(body["type"]),
        data=body.get("data") or {},
        created=parse_time(created),
        text=body.get("text"),
        envelope=body,
    )


def collect_cases() -> dict[str, Event]:
    """Golden name -> event. Fixture files win over inline samples of the same type."""
    cases: dict[str, Event] = {}
    for provider in ("anchor", "deck"):
        for path in samples(provider, "*.json"):
            body = json.loads(path.read_text(encoding="utf-8"))
            cases[f"{provider}/{path.stem}"] = event_from_envelope(provider, body)
    for kind, (event_id, data) in TABSTACK_INLINE.items():
        cases[f"tabstack/{kind}"] = Event(
            source="tabstack", provider="tabstack", id=event_id, type=kind, data=data
        )
    return cases


CASES = collect_cases()
RENDERER = Renderer()


def rendered_json(event: Event) -> dict[str, Any]:
    message = RENDERER.render(event)
    assert message.error is None, message.error
    assert message.template != FALLBACK
    return {"template": message.template, "text": message.text, "blocks": message.blocks}


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_renders_without_fallback_and_matches_golden(name: str) -> None:
    got = rendered_json(CASES[name])
    golden = GOLDEN / f"{name}.json"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}; run with RELAY_UPDATE_GOLDEN=1"
    assert json.loads(golden.read_text(encoding="utf-8")) == got


def test_every_golden_file_has_a_case() -> None:
    """A golden file whose case is gone is stale (update mode deletes it). Other chats'
    formats keep theirs in a folder of their own (`golden/<chat>/`), checked by their tests."""
    stale = []
    for path in GOLDEN.glob("*/*.json"):  # <provider>/<case>; deeper: other chats' payloads
        name = path.relative_to(GOLDEN).with_suffix("").as_posix()
        if name.split("/")[0] not in PROVIDERS:
            continue
        if name not in CASES:
            if UPDATE:
                path.unlink()
            else:
                stale.append(name)
    assert stale == []


@pytest.mark.parametrize(
    ("provider", "kind"),
    [("anchor", t) for t in ANCHOR_TYPES]
    + [("deck", t) for t in DECK_TYPES]
    + [("tabstack", t) for t in TABSTACK_TYPES],
)
def test_every_event_type_has_a_case_and_a_specific_builtin(provider: str, kind: str) -> None:
    event = Event(source=provider, provider=provider, id="evt_1", type=kind, data={})
    name = RENDERER.resolve(event)
    assert name not in ("default", f"{provider}/default", FALLBACK)
    assert any(e.provider == provider and e.type == kind for e in CASES.values())


@pytest.mark.parametrize("name", sorted(CASES))
def test_builtin_says_more_than_the_one_liner(name: str) -> None:
    event = CASES[name]
    message = RENDERER.render(event)
    kinds = [b["type"] for b in message.blocks]
    assert kinds[0] == "header"
    assert kinds[-1] == "context"
    facts = [b for b in message.blocks if b["type"] == "section"]
    assert facts, "no section with facts"
    assert message.text.startswith(":"), "the notification starts with the status emoji"
    assert message.text != event.text
    shown = json.dumps(message.blocks, ensure_ascii=False)
    assert len(shown) > 2 * len(event.text or "x" * 40)


@pytest.mark.parametrize("name", sorted(CASES))
def test_builtin_survives_every_field_missing_or_mistyped(name: str) -> None:
    """Optional fields null, wrong-typed or absent: the built-in still renders, never falls back."""
    event = CASES[name]
    for data in (
        {},
        {key: None for key in event.data},
        {key: "not-the-type" for key in event.data},
        {key: 12345 for key in event.data},
        {key: ["x", {"y": 1}] for key in event.data},
        {key: {"nested": {"deep": [1, 2]}} for key in event.data},
    ):
        variant = Event(event.source, event.provider, event.id, event.type, data, event.created)
        message = RENDERER.render(variant)
        assert message.error is None, f"{data}: {message.error}"
        assert message.template != FALLBACK


def test_source_named_differently_uses_the_provider_builtins() -> None:
    event = CASES["anchor/task.completed"]
    staging = Event("anchor-staging", "anchor", event.id, event.type, event.data, event.created)
    message = RENDERER.render(staging)
    assert message.template == "anchor/task.completed"
    assert "anchor-staging" in message.blocks[-1]["elements"][0]["text"]


def test_failure_messages_show_error_type_and_message() -> None:
    anchor = RENDERER.render(CASES["anchor/task.failed"])
    deck = RENDERER.render(CASES["deck/task_run.failed"])
    tabstack = RENDERER.render(CASES["tabstack/run.failed"])
    assert "Task failed: invalid credentials" in anchor.blocks[0]["text"]["text"]
    assert "Login rejected: wrong password" in json.dumps(anchor.blocks)
    assert "`timeout`" in json.dumps(deck.blocks)
    assert "exceeded the timeout of 10 minutes" in deck.text
    assert "TASK_FAILED" in tabstack.text
    assert "Login form rejected the credentials" in json.dumps(tabstack.blocks)


def test_buttons_link_dashboard_recording_live_view_and_artifacts() -> None:
    def urls(name: str) -> list[str]:
        message = RENDERER.render(CASES[name])
        return [e["url"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]

    completed = urls("anchor/task.completed")
    assert completed[0] == "https://app.anchorbrowser.io/sessions/ses_8d2c1fda"
    assert any("recording.mp4" in u for u in completed)
    assert any(u.endswith("/artifacts/art_1/fetch") for u in completed)
    assert urls("anchor/intervention.requested")[0].startswith("https://live.anchorbrowser.io/")


def test_humanized_facts_in_anchor_task_completed() -> None:
    shown = json.dumps(RENDERER.render(CASES["anchor/task.completed"]).blocks, ensure_ascii=False)
    for fact in ("4.2s", "$0.012", "37.5 KB", "`tsk_4f8w9n2b…0123456f`", "<!date^"):
        assert fact in shown


@pytest.mark.parametrize("kind", ["intervention.requested", "intervention.resolved"])
def test_an_intervention_shows_its_id_whatever_its_name(kind: str) -> None:
    event = CASES[f"anchor/{kind}"]
    data = {k: v for k, v in event.data.items() if k != "intervention_id"}
    for field in ("request_id", "requestId"):
        named = replace(event, data={**data, field: "req_7Qx2"})
        assert "*Intervention*\\n`req_7Qx2`" in json.dumps(RENDERER.render(named).blocks)
