"""Every shipped sample, rendered and written in every chat's native format, byte for byte.

Each sample of `relay/samples/` (parsed as relay parses it, then as the stores hand it back)
is rendered with the built-in templates; the message the stores keep and each chat's payload
(Slack, Discord, Teams, Google Chat, Mattermost, and the dry-run text) must equal the golden
output exactly, key order and every escaped character included. Variants widen what is pinned:
the route's mentions and a repeat counter, ids in full (a digest), every string of the sample
replaced by hostile markup (escaping), and a user's templates that import the layout or a
partial `with context` or write Block Kit themselves.

Golden files: tests/golden/render/payloads/<part>.json, one object per part (`messages`, a chat's
payloads, `text`), case -> output. After an intended change, regenerate and review the diff:

    RELAY_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render_golden.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile import RUNTIME

from relay.event import Event, as_stored
from relay.messages import Button, Card, Detail, Field, Message, Repeat
from relay.render.formats import discord, google_chat, mattermost, slack, teams, text
from relay.render.renderer import Renderer
from relay.samples import sample_events

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "render" / "payloads"
USER_TEMPLATES = ROOT / "tests" / "golden" / "render" / "user_templates"
UPDATE = os.environ.get("RELAY_UPDATE_GOLDEN") == "1"

# one name of each form every chat takes, and one meant for each chat alone
MENTIONS = (
    "@here", "@channel", "U0123ABCD", "S0123TEAM", "slack:W0123ABCD",
    "discord:user:123456789012345678", "discord:role:223456789012345678",
    "teams:alice@example.com", "google_chat:users/123", "mattermost:alice",
)  # fmt: skip
REPEAT = Repeat(count=3, first_at=1_767_000_000.0, last_at=1_767_003_725.5)
# every string of a sample becomes this: each way event text could try to act in a chat
HOSTILE = (
    "<!channel> <!here|here> <@U0123ABCD> <!subteam^S1|@team> <#C1> @everyone @here "
    "<https://evil.example|click> [x](https://evil.example) &lt;!channel&gt; & *b* _i_ ~s~ "
    '`c` ```f``` > q\n# h\n<b>html</b> {{ 7*7 }} \\" \u202e\u2066 \x1b[31m \ufffd'
)

FORMATS: dict[str, Callable[[Message], Any]] = {
    "slack": slack.payload,
    "discord": discord.payload,
    "teams": teams.payload,
    "google_chat": google_chat.payload,
    "mattermost": mattermost.payload,
}


def _hostile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _hostile(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hostile(v) for v in value]
    return HOSTILE if isinstance(value, str) else value


@cache
def samples() -> dict[str, Event]:
    """Case name (`anchor/task.completed`, `tabstack/run_success.3`) -> the event."""
    found: dict[str, Event] = {}
    for event in sample_events(RUNTIME):
        stored = as_stored(event)
        name = f"{stored.source}/{stored.type}"
        if stored.provider == "tabstack":
            name = f"{stored.source}/{stored.id.replace(':', '.')}"
        assert name not in found, name
        found[name] = stored
    assert len(found) > 40
    return found


def _with(message: Message, **changes: Any) -> Message:
    if "repeat" in changes and not isinstance(message, Card):
        changes.pop("repeat")
    return replace(message, **changes)


@cache
def outputs() -> dict[str, dict[str, Any]]:
    """Part -> case -> output, for every case."""
    builtin = Renderer()
    user = Renderer(USER_TEMPLATES)
    parts: dict[str, dict[str, Any]] = {"messages": {}, "text": {}, **{c: {} for c in FORMATS}}

    def add(case: str, rendered: Any, chats: tuple[str, ...] = tuple(FORMATS)) -> None:
        message = rendered.message
        parts["messages"][case] = {
            "template": rendered.template,
            "error": rendered.error,
            "message": message.to_json(),
        }
        for chat in chats:
            if chat != "slack" and not isinstance(message, Card):
                continue  # Block Kit is Slack's alone
            parts[chat][case] = FORMATS[chat](message)
            parts[chat][case + " +mentions +repeat"] = FORMATS[chat](
                _with(message, mentions=MENTIONS, repeat=REPEAT)
            )
        where = text.Where("ops", chat="slack", channel="#ops")
        parts["text"][case] = text.readable(_with(message, mentions=MENTIONS), where)

    for name, event in samples().items():
        add(name, builtin.render(event))
        add(name + " +full_ids", builtin.render(event, full_ids=True), ("slack",))
        envelope = _hostile(dict(event.envelope))
        hostile = replace(event, data=_hostile(dict(event.data)), text=HOSTILE, envelope=envelope)
        add(name + " +hostile", builtin.render(hostile))
        for template in ("anchor/task.completed", "anchor/default", "deck/default"):
            add(f"{name} +user {template}", user.render(event, template=template), ("slack",))
    return parts


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1)


@pytest.mark.parametrize("part", ["messages", "text", *FORMATS])
def test_every_sample_renders_as_its_golden_output(part: str) -> None:
    got = outputs()[part]
    golden = GOLDEN / f"{part}.json"
    if UPDATE:
        golden.write_text(_text(got) + "\n", encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}; run with RELAY_UPDATE_GOLDEN=1"
    want = json.loads(golden.read_text(encoding="utf-8"))
    assert sorted(got) == sorted(want)
    # compared as text, so that key order and every character count
    different = [case for case in want if _text(want[case]) != _text(got[case])]
    assert different == [], f"{len(different)} cases differ, first {different[0]}: " + (
        f"want {_text(want[different[0]])[:3000]}\ngot {_text(got[different[0]])[:3000]}"
    )


def test_the_cases_cover_every_shipped_sample_and_the_hostile_data_shows_as_text() -> None:
    kinds = {(e.provider, e.type) for e in samples().values()}
    assert {p for p, _ in kinds} == {"anchor", "deck", "tabstack"}
    assert len(kinds) >= 45
    payload = outputs()["slack"]["anchor/task.failed +hostile"]
    notification = payload["text"]  # mrkdwn: a control sequence from data must read as text
    assert "&lt;!channel&gt;" in notification and "<!channel>" not in notification
    messages = outputs()["messages"]
    assert all(m["error"] is None for m in messages.values())
    assert {m["message"]["kind"] for m in messages.values()} == {"card", "blocks"}


texts = st.text(st.characters(codec="utf-8"), max_size=400) | st.sampled_from(
    ["", "\x00\x1f" * 900, '"\\' * 2000, "x" * 5000, "<!channel> & *b*\n" * 300]
)
cards = st.builds(
    Card,
    status=st.sampled_from(["success", "failure", "nonsense"]),
    title=texts,
    fact=st.none() | texts,
    summary=st.none() | texts,
    errors=st.none() | texts,
    fields=st.lists(st.builds(Field, texts, texts), max_size=25).map(tuple),
    sections=st.lists(texts, max_size=6).map(tuple),
    details=st.lists(st.builds(Detail, texts, texts), max_size=4).map(tuple),
    buttons=st.lists(
        st.builds(Button, texts, st.sampled_from(["https://e.example/" + "p" * 900, "x"])),
        max_size=30,
    ).map(tuple),
    context=st.none() | texts,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cards)
def test_a_cards_slack_payload_is_what_measuring_its_size_gives(card: Card) -> None:
    """Slack's payload skips measuring a card's blocks when a bound on their size is within
    the limit: the payload is the one measuring them would have given."""
    got = slack.payload(card)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(slack, "_size_bound", lambda card, blocks: None)
        measured = slack.payload(card)
    assert _text(got) == _text(measured)
