"""Teams' format: a card as the Adaptive Card a Workflows webhook posts. Golden payloads of the
built-in templates, relay's markup as TextRun properties, mentions only from the config, and,
property-based, every built-in template with hostile data: no mention, no link but relay's own,
no Markdown-reading element with event text, always within Teams' size, and accepted by the
fake Teams over HTTP.

Golden files: tests/golden/teams/<provider>/<case>.json. After an intended change, regenerate
and review the diff:

    RELAY_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_teams_format.py
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from faketeams import FakeTeams, at_tags, check, lint
from hypothesis import given, settings
from hypothesis import strategies as st
from test_hostile import HOSTILE as SLACK_HOSTILE
from test_hostile import RUNTIME, SAMPLES, hostile_events, json_values, urls_in, with_leaves
from test_templates import CASES

from relay.event import Event
from relay.messages import Blocks, Button, Card, Detail, Field, Message, Repeat
from relay.planning import plan
from relay.render.formats.teams import (
    LIMIT,
    TRIMMED,
    mentions,
    payload,
    size,
    takes_mention,
)
from relay.render.formats.textruns import neutral
from relay.render.markup import decode
from relay.render.mrkdwn import control_sequences
from relay.render.renderer import Renderer

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "teams"
UPDATE = os.environ.get("RELAY_UPDATE_GOLDEN") == "1"
RENDERER = Renderer()
ALICE = "teams:alice@contoso.com|Alice Smith"
CONFIGURED = (ALICE, "@here", "@everyone", "U0123ABCD", "discord:user:123456")
HOSTILE = [
    *SLACK_HOSTILE, "@everyone", "@here", "<users/all>", "[click](https://evil.example)",
    "<at>x</at>", "<AT >Alice Smith</ at>", "<at>Alice Smith</at>", "<!channel>", "@alice",
    "**bold** _it_ ~~s~~ `c` # h", "x" * 10_000,
]  # fmt: skip
GOLDEN_CASES = [
    "anchor/task.failed", "anchor/task.completed", "anchor/intervention.requested",
    "anchor/batch.failed", "deck/task_run.failed", "deck/credential.invalid",
    "tabstack/run.completed",
]  # fmt: skip


def card_of(document: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = document["attachments"][0]["content"]
    return content


def runs(document: Any) -> Iterator[dict[str, Any]]:
    """The TextRuns of a payload, in reading order."""
    if isinstance(document, dict):
        if document.get("type") == "TextRun":
            yield document
        for value in document.values():
            yield from runs(value)
    elif isinstance(document, list):
        for item in document:
            yield from runs(item)


def texts_of(document: Any) -> Iterator[tuple[str, str]]:
    """Every (element type, text) of a payload, in reading order."""
    if isinstance(document, dict):
        if isinstance(document.get("type"), str) and isinstance(document.get("text"), str):
            yield document["type"], document["text"]
        for value in document.values():
            yield from texts_of(value)
    elif isinstance(document, list):
        for item in document:
            yield from texts_of(item)


def linked_urls(document: Any) -> set[str]:
    """Every URL the payload links to: run select actions and card actions."""
    found = set()
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "Action.OpenUrl":
                found.add(item["url"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def relays_links(message: Message) -> set[str]:
    """The links relay itself put in a message: `<http...|label>` sequences of its markup and
    its buttons (read from the markup, independently of the formatter)."""
    if isinstance(message, Blocks):
        texts = [message.text]
        buttons: list[str] = []
    else:
        texts = [message.summary, message.errors, message.context, *message.sections]
        texts += [t for f in message.fields for t in (f.label, f.value)]
        texts += [d.label for d in message.details]
        buttons = [b.url for b in message.buttons]
    found = set(buttons)
    for text in texts:
        for sequence in control_sequences(text or ""):
            if sequence.startswith(("<http://", "<https://")):
                found.add(decode(sequence[1:-1].split("|", 1)[0]))
    return found


def assert_teams_safe(document: dict[str, Any], message: Message) -> None:
    """Teams takes it, within its size; its only mention is the config's, in the one TextBlock;
    no `<at>` of event text survives as a tag; it links only where relay linked."""
    assert check(document) == [], check(document)
    assert lint(document) == []
    assert size(document) <= LIMIT
    people = mentions(message.mentions)
    blocks = [text for kind, text in texts_of(document) if kind == "TextBlock"]
    assert blocks == ([" ".join(p.tag for p in people)] if people else [])
    tags = at_tags(dict(document))
    assert {t.entity for t in tags} == {p.id for p in people}
    assert all(t.pings and t.element == "TextBlock" for t in tags)
    for run in runs(document):
        assert not re.search(r"<\s*/?\s*at\b", run["text"], re.IGNORECASE), run["text"]
        assert not re.search("[\ud800-\udfff]", run["text"])
    assert linked_urls(document) <= relays_links(message)
    for url in linked_urls(document):
        assert re.match(r"^https?://\S+$", url)


@pytest.fixture(scope="module")
def teams() -> Iterator[FakeTeams]:
    with FakeTeams() as fake:
        yield fake


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


def accepted(teams: FakeTeams, client: httpx.Client, document: dict[str, Any]) -> None:
    answer = client.post(teams.workflow_url("alerts"), json=document)
    assert (answer.status_code, answer.content) == (202, b""), answer.text


# ---------------------------------------------------------------- golden payloads


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_builtin_cards_match_their_golden_payload(name: str) -> None:
    rendered = RENDERER.render(CASES[name])
    message = replace(rendered.message, mentions=CONFIGURED)
    got = payload(message)
    golden = GOLDEN / f"{name}.json"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}; run with RELAY_UPDATE_GOLDEN=1"
    assert json.loads(golden.read_text(encoding="utf-8")) == got
    assert_teams_safe(dict(got), message)


def test_every_golden_payload_has_a_case() -> None:
    stale = [
        p.relative_to(GOLDEN).with_suffix("").as_posix()
        for p in GOLDEN.rglob("*.json")
        if p.relative_to(GOLDEN).with_suffix("").as_posix() not in GOLDEN_CASES
    ]
    assert stale == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_builtin_card_is_accepted_and_safe(
    name: str, teams: FakeTeams, client: httpx.Client
) -> None:
    message = replace(RENDERER.render(CASES[name]).message, mentions=CONFIGURED)
    document = dict(payload(message))
    assert_teams_safe(document, message)
    accepted(teams, client, document)
    card = card_of(document)
    assert card["version"] == "1.4" and card["msteams"]["width"] == "Full"
    header = card["body"][1]
    assert header["type"] == "Container"
    title = "".join(r["text"] for r in runs(header))
    assert isinstance(message, Card) and title.endswith(message.title)


# ---------------------------------------------------------------- relay's markup as TextRuns


def test_markup_becomes_textrun_properties_and_links_select_actions() -> None:
    card = Card(
        status="failure",
        title="Task failed",
        summary=(
            ":x: *bold* _it_ ~gone~ `tsk_1` <https://app.example/s?a=1&amp;b=2|Open &amp; see>"
            " <!date^1716553080^{date_short_pretty} {time}|May 24>\n>quoted"
        ),
    )
    body = card_of(dict(payload(card)))["body"]
    header, summary = body
    assert header["style"] == "attention"
    assert header["items"][0]["inlines"] == [
        {"type": "TextRun", "text": "\u274c Task failed", "weight": "bolder", "size": "large",
         "color": "attention"},
    ]  # fmt: skip
    assert summary["inlines"] == [
        {"type": "TextRun", "text": "\u274c "},
        {"type": "TextRun", "text": "bold", "weight": "bolder"},
        {"type": "TextRun", "text": " "},
        {"type": "TextRun", "text": "it", "italic": True},
        {"type": "TextRun", "text": " "},
        {"type": "TextRun", "text": "gone", "strikethrough": True},
        {"type": "TextRun", "text": " "},
        {"type": "TextRun", "text": "tsk_1", "fontType": "monospace"},
        {"type": "TextRun", "text": " "},
        {"type": "TextRun", "text": "Open & see",
         "selectAction": {"type": "Action.OpenUrl", "url": "https://app.example/s?a=1&b=2"}},
        {"type": "TextRun", "text": " 2024-05-24 12:18 UTC\n"},
        {"type": "TextRun", "text": "\u2502 ", "isSubtle": True},
        {"type": "TextRun", "text": "quoted"},
    ]  # fmt: skip


def test_fields_details_context_repeat_and_buttons() -> None:
    card = Card(
        status="success",
        title="Done",
        fields=(Field("Task", "`tsk_1`"), Field("Cost", "$0.01"), Field("Mode", "agentic")),
        details=(Detail("Output", '{\n  "a": &lt;1&gt; &amp;\n}'),),
        context="anchor · `evt_1`",
        repeat=Repeat(3, 1716553080.0, 1716556680.0),
        buttons=(
            Button("Open", "https://app.example/1", "primary"),
            Button("Stop", "https://app.example/2", "danger"),
            Button("Bad", "javascript:alert(1)"),
        ),
    )
    card_json = card_of(dict(payload(card)))
    _header, row1, row2, detail, context, repeat = card_json["body"]
    assert [len(r["columns"]) for r in (row1, row2)] == [2, 1]
    task = row1["columns"][0]["items"][0]["inlines"]
    assert task == [
        {"type": "TextRun", "text": "Task", "weight": "bolder"},
        {"type": "TextRun", "text": "\n"},
        {"type": "TextRun", "text": "tsk_1", "fontType": "monospace"},
    ]
    assert detail["style"] == "emphasis"
    assert detail["items"][0]["inlines"][-1] == {
        "type": "TextRun", "text": '{\n  "a": <1> &\n}', "fontType": "monospace",
    }  # fmt: skip
    assert context["separator"] is True
    assert "".join(r["text"] for r in context["inlines"]) == "anchor · evt_1"
    assert repeat["inlines"][0]["text"] == (
        "\U0001f501 Seen 3 times · first 2024-05-24 12:18 UTC · last 2024-05-24 13:18 UTC"
    )
    assert card_json["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open", "url": "https://app.example/1",
         "style": "positive"},
        {"type": "Action.OpenUrl", "title": "Stop", "url": "https://app.example/2",
         "style": "destructive"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "colour"),
    [("success", "good"), ("failure", "attention"), ("waiting", "warning"), ("info", None)],
)
def test_the_header_shows_the_status_colour_by_name(status: str, colour: str | None) -> None:
    header = card_of(dict(payload(Card(status=status, title="x"))))["body"][0]
    assert header["style"] == (colour or "emphasis")
    assert header["items"][0]["inlines"][0].get("color") == colour


# ---------------------------------------------------------------- mentions


def test_mentions_come_only_from_the_config_names_meant_for_teams() -> None:
    assert takes_mention("teams:bob@contoso.com")
    for name in ("@here", "@channel", "@everyone", "U0123ABCD", "discord:user:123456"):
        assert not takes_mention(name)
    card = Card(
        status="info",
        title="x",
        mentions=(ALICE, "teams:bob@contoso.com", "@here", "teams:bob@contoso.com|Again",
                  "teams:87d349ed-44d7|Ops_*[on call]*"),
    )  # fmt: skip
    document = dict(payload(card))
    body = card_of(document)["body"]
    assert body[0] == {
        "type": "TextBlock",
        "text": "<at>Alice Smith</at> <at>bob@contoso.com</at> <at>Opson call</at>",
        "wrap": True,
    }
    assert card_of(document)["msteams"]["entities"] == [
        {"type": "mention", "text": "<at>Alice Smith</at>",
         "mentioned": {"id": "alice@contoso.com", "name": "Alice Smith"}},
        {"type": "mention", "text": "<at>bob@contoso.com</at>",
         "mentioned": {"id": "bob@contoso.com", "name": "bob@contoso.com"}},
        {"type": "mention", "text": "<at>Opson call</at>",
         "mentioned": {"id": "87d349ed-44d7", "name": "Ops_*[on call]*"}},
    ]  # fmt: skip
    assert [t.entity for t in at_tags(document) if t.pings] == [
        "alice@contoso.com", "bob@contoso.com", "87d349ed-44d7",
    ]  # fmt: skip


def test_a_broadcast_alone_writes_no_mention() -> None:
    document = dict(payload(Card(status="info", title="x", mentions=("@here", "@channel"))))
    assert "entities" not in card_of(document)["msteams"]
    assert [kind for kind, _ in texts_of(document)].count("TextBlock") == 0


def test_an_at_tag_in_event_text_reads_as_written_and_pairs_with_no_entity() -> None:
    tag = "<at>Alice Smith</at>"
    card = Card(status="info", title=tag, summary=f"hi {tag}", mentions=(ALICE,))
    document = dict(payload(card))
    shown = {r["text"] for r in runs(document)}
    assert {text.replace("\u2060", "") for text in shown} == {f"\u2139\ufe0f {tag}", f"hi {tag}"}
    assert not any(tag in text for text in shown)
    (only,) = at_tags(document)  # the configured mention, in its TextBlock
    assert (only.element, only.entity) == ("TextBlock", "alice@contoso.com")
    assert neutral("a </AT> b < at>") == "a <\u2060/AT> b <\u2060 at>"
    assert neutral("<attach> <a> x<b") == "<attach> <a> x<b"


# ---------------------------------------------------------------- size


def test_a_card_too_big_for_teams_is_trimmed_visibly() -> None:
    card = Card(
        status="failure",
        title="T" * 400,
        summary="s" * 10_000,
        fields=tuple(Field(f"Field {i}", "v" * 5_000) for i in range(40)),
        sections=("x" * 10_000,) * 10,
        details=(Detail("Output", "{}" * 10_000),) * 5,
        context="c" * 5_000,
        buttons=tuple(Button(f"B{i}", f"https://app.example/{'p' * 2_000}/{i}") for i in range(9)),
        mentions=(ALICE,),
    )
    document = dict(payload(card))
    assert size(document) <= LIMIT
    assert check(document) == []
    body = card_of(document)["body"]
    assert body[0]["type"] == "TextBlock"  # the mention stays
    assert body[1]["type"] == "Container"  # and so does the header
    assert body[-1]["inlines"][0]["text"] == TRIMMED
    assert any(r["text"].endswith("…") for r in runs(document))


def test_a_big_card_is_cut_with_an_ellipsis_before_anything_is_dropped() -> None:
    card = Card(status="info", title="x", summary="word " * 4000)
    document = dict(payload(card))
    texts = [r["text"] for r in runs(document)]
    assert texts[-1].endswith("…") and len(texts[-1]) <= 4000
    assert TRIMMED not in texts


def test_the_size_counted_is_the_longest_form_an_encoder_sends() -> None:
    card = Card(status="info", title="x", summary="\U0001f600" * 3_000 + "é" * 3_000)
    document = dict(payload(card))
    compact = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(compact) <= size(document) <= LIMIT


# ---------------------------------------------------------------- Block Kit and hostile data


def test_block_kit_shows_its_notification_text_safely() -> None:
    message = Blocks(
        text="*Deploy* <https://ci.example/1|done> <!channel> [x](https://evil.example)",
        blocks=({"type": "section", "text": {"type": "mrkdwn", "text": "ignored"}},),
        mentions=(ALICE,),
    )
    document = dict(payload(message))
    assert_teams_safe(document, message)
    body = card_of(document)["body"]
    assert [b["type"] for b in body] == ["TextBlock", "RichTextBlock"]
    shown = "".join(r["text"] for r in body[1]["inlines"])
    assert shown == "Deploy done <!channel> [x](https://evil.example)"
    assert linked_urls(document) == {"https://ci.example/1"}


def test_an_empty_message_is_still_a_card_teams_takes() -> None:
    document = dict(payload(Blocks(text="")))
    assert check(document) == []
    assert card_of(document)["body"] == [
        {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": " "}]}
    ]


json_hostile = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.sampled_from(HOSTILE),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=6),
    max_leaves=30,
)  # fmt: skip
ANCHOR_TYPES = sorted(p.stem for p in (SAMPLES / "anchor").glob("*.json"))
DECK_TYPES = sorted(p.stem for p in (SAMPLES / "deck").glob("*.json"))


@settings(max_examples=120, deadline=None)
@given(
    provider=st.sampled_from(["anchor", "deck"]),
    index=st.integers(min_value=0),
    data=json_hostile | json_values,
    leaf=st.sampled_from(HOSTILE) | json_hostile,
)
def test_every_template_with_hostile_data_is_safe_for_teams(
    teams: FakeTeams, client: httpx.Client, provider: str, index: int, data: Any, leaf: Any
) -> None:
    for event in hostile_events(provider, index, data, leaf, text="<at>x</at> <!channel> hi"):
        for target in RUNTIME.router.decide(event).targets:
            rendered = RUNTIME.renderer.render(event, template=target.template)
            message = replace(rendered.message, mentions=CONFIGURED)
            document = dict(payload(message))
            assert_teams_safe(document, message)
            assert linked_urls(document) - {b.url for b in _buttons(message)} <= urls_in(event.data)
            accepted(teams, client, document)
    assert teams.posts[-1].pings[0].entity == "alice@contoso.com"


def _buttons(message: Message) -> tuple[Button, ...]:
    return message.buttons if isinstance(message, Card) else ()


@pytest.mark.parametrize("leaf", HOSTILE)
def test_every_builtin_template_takes_each_hostile_value_in_every_field(
    teams: FakeTeams, client: httpx.Client, leaf: str
) -> None:
    for provider, kinds in (("anchor", ANCHOR_TYPES), ("deck", DECK_TYPES)):
        for kind in kinds:
            sample = json.loads((SAMPLES / provider / f"{kind}.json").read_text())["data"]
            event = Event(provider, provider, "evt_w", kind, with_leaves(sample, leaf), text=leaf)
            for planned in plan(RUNTIME, event).messages:
                message = replace(planned.message, mentions=CONFIGURED)
                document = dict(payload(message))
                assert_teams_safe(document, message)
                accepted(teams, client, document)
