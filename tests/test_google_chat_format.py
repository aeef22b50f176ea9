"""Google Chat's format (relay.render.formats.google_chat): golden payloads for a few event
types, mentions only from the config, every text escaped for the markup it lands in, and,
property-based, every built-in template with hostile and wrong-typed data rendered for Google
Chat: no mention formed, no link other than relay's own, within Google's limits, accepted by
the fake Google Chat's checks.

Golden files: tests/golden/google_chat/<provider>/<case>.json hold the template used and the
payload. After an intended change, regenerate them and review the diff:

    RELAY_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_google_chat_format.py
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakegooglechat import MAX_WIDGETS, check_message
from hypothesis import given, settings
from hypothesis import strategies as st
from test_hostile import (
    ANCHOR_TYPES,
    DECK_TYPES,
    HOSTILE,
    RUNTIME,
    WRONG,
    every_leaf,
    hostile_events,
    urls_in,
)
from test_templates import CASES

from relay.event import Event
from relay.messages import Blocks, Button, Card, Detail, Field, Repeat
from relay.planning import plan
from relay.render.formats.google_chat import (
    mention_text,
    payload,
    size,
    takes_mention,
    widget_count,
)
from relay.render.renderer import Renderer

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "relay" / "samples"
GOLDEN = ROOT / "tests" / "golden" / "google_chat"
UPDATE = os.environ.get("RELAY_UPDATE_GOLDEN") == "1"
GOLDEN_CASES = {
    "anchor/task.failed": (),
    "anchor/session.completed": (),
    "anchor/intervention.requested": ("@here", "google_chat:users/112233445566778899"),
    "deck/task_run.completed": (),
    "deck/credential.invalid": ("@channel",),
    "tabstack/run.failed": (),
}
RENDERER = Renderer()
WEDNESDAY_NOON = 1_736_942_400.0  # 2025-01-15 12:00 UTC: the example config mentions people

# ---------------------------------------------------------------- what "safe" means here

_ANGLED = re.compile(r"<[^<>]*>")
_ALLOWED_HTML = re.compile(
    r'</?(?:b|i|s)>|<br>|<font color="#[0-9a-f]{6}">|</font>|<a href="([^"<>]*)">|</a>'
)
_PLAIN = ("title", "subtitle", "topLabel", "header")


def assert_google_chat_safe(
    document: dict[str, Any], allowed_urls: set[str], mentions: frozenset[str] = frozenset()
) -> None:
    """Google takes it; its `text` forms only the config's mentions and links to the event's
    own URLs; its card HTML has only the documented tags, links only to the event's own URLs;
    its plain fields hold no tag at all."""
    assert check_message(document) is None, check_message(document)
    assert size(document) <= 32_000
    text = document["text"]
    assert text.strip()
    for sequence in _ANGLED.findall(text):
        if sequence in mentions:
            continue
        url = sequence[1:-1].split("|", 1)[0]
        assert url in allowed_urls, sequence  # a link only to a URL the event gave as a URL
    assert "](" not in text  # no Markdown link either
    for card in document.get("cardsV2", []):
        assert_card_safe(card["card"], allowed_urls)


def assert_card_safe(card: dict[str, Any], allowed_urls: set[str]) -> None:
    stack: list[Any] = [card]
    widgets = 0
    for section in card.get("sections", []):
        widgets += sum(widget_count(w) for w in section["widgets"])
    assert widgets <= MAX_WIDGETS
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            if key in _PLAIN and isinstance(value, str):
                assert "<" not in value and ">" not in value, (key, value)
            elif key == "text" and isinstance(value, str) and "onClick" not in item:
                assert_html_safe(value, allowed_urls)
            elif key == "text" and isinstance(value, str):  # a button's text is plain
                assert "<" not in value and ">" not in value, value
            elif key == "openLink":  # relay's own links (a dashboard), or the event's
                assert re.match(r"^https?://[^\s<>|]+$", value["url"]), value
            else:
                stack.append(value)


def assert_html_safe(text: str, allowed_urls: set[str]) -> None:
    for found in _ALLOWED_HTML.finditer(text):
        if found.group(1) is not None:
            assert html.unescape(found.group(1)) in allowed_urls, found.group(0)
    rest = _ALLOWED_HTML.sub("", text)
    assert "<" not in rest and ">" not in rest, text


# ---------------------------------------------------------------- golden payloads


def golden(case: str) -> dict[str, Any]:
    event = CASES[case]
    rendered = RENDERER.render(event)
    assert rendered.error is None, rendered.error
    message = replace(rendered.message, mentions=GOLDEN_CASES[case])
    return {"template": rendered.template, "payload": payload(message)}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_payloads(case: str) -> None:
    found = golden(case)
    path = GOLDEN / f"{case}.json"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(found, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with RELAY_UPDATE_GOLDEN=1"
    assert found == json.loads(path.read_text(encoding="utf-8"))
    assert check_message(found["payload"]) is None


def test_golden_card_reads_as_the_event() -> None:
    document = golden("anchor/task.failed")["payload"]
    assert document["text"].startswith("\u274c Task failed: invalid credentials — tsk_4f8w9n2b")
    card = document["cardsV2"][0]["card"]
    assert card["header"] == {
        "title": "\u274c Task failed: invalid credentials",
        "subtitle": "tsk_4f8w9n2b…0123456f · Login rejected: wrong password",
    }
    flat = json.dumps(card, ensure_ascii=False)
    assert "<b>invalid credentials</b>" in flat  # relay's *bold*
    assert '"topLabel": "Duration", "text": "1m 1s"' in flat
    assert '"url": "https://app.anchorbrowser.io/sessions/ses_8d2c1fda"' in flat
    assert "2026-05-24 12:18 UTC" in flat  # a date as UTC text, not Slack's token
    assert "<!date" not in flat and ":rotating_light:" not in flat


# ---------------------------------------------------------------- mentions


def test_mentions_come_from_the_config_in_google_chats_form() -> None:
    assert mention_text(["@here", "@channel", "@everyone", "google_chat:all"]) == "<users/all>"
    assert mention_text(["google_chat:users/123", "@here"]) == "<users/123> <users/all>"
    assert mention_text(["U0123ABCD", "S0123ABCD", "discord:user:12345", "teams:a@b.c"]) is None
    assert takes_mention("@here") and takes_mention("google_chat:users/1")
    assert not takes_mention("U0123ABCD") and not takes_mention("mattermost:alice")


def test_mentions_go_first_in_the_text_and_never_in_the_card() -> None:
    card = Card(
        "failure",
        "Task failed",
        summary="It broke.",
        mentions=("@here", "google_chat:users/42", "U0123ABCD"),
    )
    document = payload(card)
    assert document["text"] == "<users/all> <users/42> \u274c Task failed"
    assert "users/" not in json.dumps(document["cardsV2"])
    bare = payload(Card("failure", "Task failed"))  # nothing but a title: no card
    assert bare == {"text": "\u274c Task failed"}


# ---------------------------------------------------------------- escaping


EVIL = "<users/all> @everyone @here <!channel> <at>x</at> [click](https://evil.example) @alice"


def test_event_text_forms_no_mention_link_or_markup_in_the_text() -> None:
    card = Card(
        "failure",
        f"Task failed: {EVIL} *bold* _it_ ~s~ `code`",  # a title is plain text
        fact="&lt;users/all&gt; &amp;lt;b&amp;gt; snake_case_id *relay's own bold*",
    )
    text = payload(card)["text"]
    assert "*relay's own bold*" in text  # the fact is relay's markup: its styles stay
    assert "<" not in text and ">" not in text
    assert "](" not in text and "*bold*" not in text and "_it_" not in text and "~s~" not in text
    assert "`code`" not in text
    assert "\u2039users/all\u203a" in text  # shown, as look-alikes
    assert "snake_case_id" in text  # an underscore inside a word is left as it is
    assert "\uff06lt;b" in text  # an entity typed in an event cannot become a character


def test_event_text_shown_as_code_forms_no_markdown_link_either() -> None:
    # a value the template shows as code (`code` filter): hypothesis found `](` passing there
    card = Card("failure", "Task failed", fact="`[click](https://evil.example)` ```[x](y)```")
    text = payload(card)["text"]
    assert "](" not in text and "[click] (https://evil.example)" in text


def test_event_text_is_html_escaped_in_the_card() -> None:
    card = Card(
        "failure",
        "Task <b>failed</b>",
        summary="&lt;b&gt;bold&lt;/b&gt; &amp; <https://example.com/a?b=1&c=2|the run>",
        fields=(Field("Who <i>", "&lt;users/all&gt;"),),
        details=(Detail("Raw", '{\n  "html": "<script>x</script>"\n}'),),
        buttons=(Button("Open <now>", "https://example.com/x"),),
    )
    document = payload(card)
    flat = json.dumps(document["cardsV2"], ensure_ascii=False)
    assert "<script>" not in flat and "&lt;script&gt;" in flat
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; " in flat
    assert '<a href=\\"https://example.com/a?b=1&amp;c=2\\">the run</a>' in flat
    assert "Task \u2039b\u203afailed\u2039/b\u203a" in flat  # the header is plain text
    assert '"topLabel": "Who \u2039i\u203a"' in flat
    assert '\u00a0\u00a0\\"html\\"' in flat  # a detail's indentation is kept
    assert_google_chat_safe(
        dict(document), {"https://example.com/a?b=1&c=2", "https://example.com/x"}
    )


def test_a_link_to_anything_but_http_is_text() -> None:
    card = Card("info", "t", summary="<javascript:alert(1)|x> <mailto:a@b.c|mail>")
    flat = json.dumps(payload(card)["cardsV2"])
    assert "href" not in flat and "&lt;javascript:alert(1)|x&gt;" in flat


def test_control_characters_and_lone_surrogates_never_reach_google() -> None:
    card = Card("failure", "bad \u0000\u0007\ud800 title", summary="x\u001by\udfff")
    document = payload(card)
    encoded = json.dumps(document, ensure_ascii=False).encode()  # a lone surrogate would raise
    assert b"\\u0000" not in encoded and "\ufffd".encode() in encoded


def test_a_slack_block_kit_message_goes_as_its_text_alone() -> None:
    blocks = Blocks(
        "<!here> *Deploy* <https://ci.example.com/1|build 1> &lt;users/all&gt;",
        ({"type": "section", "text": {"type": "mrkdwn", "text": "x"}},),
        mentions=("@here",),
        legacy_mention="<!here>",
    )
    document = payload(blocks)
    assert document == {
        "text": "<users/all> *Deploy* <https://ci.example.com/1|build 1> \u2039users/all\u203a"
    }


def test_a_repeated_card_says_how_often_in_utc() -> None:
    card = Card("failure", "Task failed", repeat=Repeat(3, 1_700_000_000.0, 1_700_003_600.0))
    document = payload(card)
    assert document["text"].endswith("(seen 3 times)")
    flat = json.dumps(document["cardsV2"], ensure_ascii=False)
    assert "Seen 3 times · first 2023-11-14 22:13 UTC · last 2023-11-14 23:13 UTC" in flat


# ---------------------------------------------------------------- limits


def test_huge_texts_are_cut_visibly_within_32000_bytes() -> None:
    big = "\U0001f600<&>" * 10_000
    card = Card(
        "failure",
        big,
        fact=big,
        summary=big,
        errors=big,
        fields=tuple(Field(big, big) for _ in range(20)),
        sections=(big, big),
        details=(Detail(big, big),),
        buttons=(Button(big, "https://example.com/x"),),
        context=big,
    )
    document = payload(card)
    assert size(document) <= 32_000
    assert check_message(dict(document)) is None
    assert "…" in document["text"] and "…" in json.dumps(document["cardsV2"], ensure_ascii=False)
    assert document["cardsV2"][0]["card"]["sections"][-1]["widgets"][0]["buttonList"]


def test_widgets_past_100_are_left_out_with_a_line_saying_so() -> None:
    card = Card(
        "info",
        "Many",
        fields=tuple(Field(f"f{i}", str(i)) for i in range(150)),
        buttons=(Button("Open", "https://example.com/x"),),
        context="ctx",
    )
    document = payload(card)
    sections = document["cardsV2"][0]["card"]["sections"]
    assert sum(widget_count(w) for s in sections for w in s["widgets"]) <= MAX_WIDGETS
    flat = json.dumps(sections)
    shown = flat.count('"topLabel"')
    assert f"{150 - shown} more not shown" in flat and "buttonList" in flat and "ctx" in flat
    assert check_message(dict(document)) is None


# ---------------------------------------------------------------- every template, hostile


GC_HOSTILE = [
    *HOSTILE, "@everyone", "@here", "<users/all>", "<users/123456>", "&lt;users/all&gt;",
    "[click](https://evil.example)", "<at>x</at>", "<!channel>", "@alice", "*b* _i_ ~s~",
    "<https://evil.example|https://good.example>", "\ud83d", "x" * 10_000,
]  # fmt: skip
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text()
json_values = st.recursive(
    json_scalars | st.sampled_from(GC_HOSTILE),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=6),
    max_leaves=30,
)  # fmt: skip


def google_chat_messages(event: Event) -> list[tuple[dict[str, Any], frozenset[str]]]:
    """Each message routing makes of the event, as Google Chat gets it, with the mentions the
    config asked for (in Google Chat's form)."""
    planned = plan(RUNTIME, event, now=WEDNESDAY_NOON)  # mentions are on
    assert planned.template_errors == (), planned.template_errors
    out = []
    for message in planned.messages:
        asked = mention_text(message.message.mentions) or ""
        out.append((dict(payload(message.message)), frozenset(asked.split())))
    return out


@settings(max_examples=120, deadline=None)
@given(
    provider=st.sampled_from(["anchor", "deck"]),
    index=st.integers(min_value=0),
    data=json_values,
    leaf=json_values,
)
def test_every_template_is_safe_for_google_chat_with_any_data(
    provider: str, index: int, data: Any, leaf: Any
) -> None:
    for event in hostile_events(provider, index, data, leaf, text="<users/all> hi"):
        for document, mentions in google_chat_messages(event):
            assert_google_chat_safe(document, urls_in(event.data), mentions)


@pytest.mark.parametrize("provider", ["anchor", "deck"])
def test_every_template_with_wrong_types_and_hostile_strings_in_every_field(
    provider: str,
) -> None:
    for kind in ANCHOR_TYPES if provider == "anchor" else DECK_TYPES:
        sample = json.loads((SAMPLES / provider / f"{kind}.json").read_text())["data"]
        for leaf in [*WRONG, *GC_HOSTILE]:
            event = Event(provider, provider, "evt_w", kind, every_leaf(sample, leaf))
            for document, mentions in google_chat_messages(event):
                assert_google_chat_safe(document, urls_in(event.data), mentions)


def test_the_mentions_a_route_asks_for_are_the_only_ones() -> None:
    body = json.loads((SAMPLES / "anchor" / "intervention.requested.json").read_text())["data"]
    event = Event("anchor", "anchor", "evt_m", "intervention.requested", every_leaf(body, EVIL))
    ((document, mentions),) = google_chat_messages(event)
    assert mentions == {"<users/all>"}  # the example config's @here on interventions
    assert document["text"].startswith("<users/all> ")
    assert document["text"].count("<users/all>") == 1
    assert_google_chat_safe(document, set(), mentions)
