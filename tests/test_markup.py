"""relay's inline markup read back into spans, as every chat other than Slack reads a card."""

from __future__ import annotations

import json
import re

import pytest
from harness import ROOT
from hypothesis import example, given
from hypothesis import strategies as st

from relay.render import mrkdwn
from relay.render.markup import (
    Break,
    Code,
    Date,
    Emoji,
    Link,
    Quote,
    Styled,
    Text,
    parse,
    plain,
    status_shortcode,
    status_unicode,
)


def test_styles_code_links_dates_and_emoji() -> None:
    spans = parse(
        ":x: *Task failed* · _slow_ ~old~ `tsk_1`"
        " <https://app.example/s?a=1&amp;b=2|Open &amp; see>"
        " <!date^1716553080^{date_short_pretty} {time}|2024-05-24 12:18 UTC>"
    )
    assert spans == [
        Emoji("x"),
        Text(" "),
        Styled("bold", (Text("Task failed"),)),
        Text(" · "),
        Styled("italic", (Text("slow"),)),
        Text(" "),
        Styled("strike", (Text("old"),)),
        Text(" "),
        Code("tsk_1"),
        Text(" "),
        Link("https://app.example/s?a=1&amp;b=2", "Open & see"),
        Text(" "),
        Date(1716553080, "2024-05-24 12:18 UTC"),
    ]
    assert Date(1716553080, "").utc() == "2024-05-24 12:18 UTC"


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("plain 12 words.", [Text("plain 12 words.")]),
        ("", []),
        (":x:", [Emoji("x")]),
        ("*b*", [Styled("bold", (Text("b"),))]),
        ("_i_", [Styled("italic", (Text("i"),))]),
        ("~s~", [Styled("strike", (Text("s"),))]),
        ("`c`", [Code("c")]),
        ("<https://e.example|l>", [Link("https://e.example", "l")]),
        ("&lt;", [Text("<")]),
        ("> q", [Quote((Text(" q"),))]),
        ("a\nb", [Text("a"), Break(), Text("b")]),
    ],
)
def test_each_piece_of_markup_alone_is_read(text: str, spans: list[object]) -> None:
    assert parse(text) == spans


def test_markers_inside_words_are_text_as_in_slack() -> None:
    assert plain(parse("snake_case_id and 2*3*4 and a~b~c")) == "snake_case_id and 2*3*4 and a~b~c"
    assert parse("file_name_") == [Text("file_name_")]


def test_quotes_breaks_and_fenced_code() -> None:
    spans = parse("*Output*\n```{\n  &quot;a&quot;: &lt;1&gt;\n}```\n>first line\n>second")
    assert spans == [
        Styled("bold", (Text("Output"),)),
        Break(),
        Code("{\n  &quot;a&quot;: <1>\n}", block=True),
        Break(),
        Quote((Text("first line"),)),
        Break(),
        Quote((Text("second"),)),
    ]


def test_entities_are_decoded_once() -> None:
    assert parse("A &amp;lt; B &lt;!channel&gt;") == [Text("A &lt; B <!channel>")]


def test_an_unknown_shortcode_and_an_odd_backtick_are_text() -> None:
    assert parse(":not_an_emoji: it`s") == [Text(":not_an_emoji: it`s")]


def test_status_emoji() -> None:
    assert status_shortcode("failure") == ":x:"
    assert status_unicode("failure") == "\u274c"
    assert status_shortcode("no-such-status") == ":information_source:"


@given(st.text(max_size=300))
@example(":no_entry_sign:")  # found by a random run
def test_escaped_event_text_never_reads_as_a_link_or_a_date(text: str) -> None:
    """Every value from an event is escaped before it joins a card's text: whatever it says,
    no chat reads a link, a date or a control sequence out of it, and its words survive."""
    spans = parse(mrkdwn.escape(text))
    kinds = set()
    stack = list(spans)
    while stack:
        span = stack.pop()
        kinds.add(type(span))
        if isinstance(span, Styled | Quote):
            stack.extend(span.children)
    assert Link not in kinds and Date not in kinds
    # an emoji shortcode (`:no_entry_sign:`) shows as its emoji, as in Slack: its words do not
    unstyled = re.sub(r":[a-z0-9_+-]+:", " ", text)
    words = [w for w in unstyled.replace("*", " ").replace("_", " ").replace("~", " ").split()]
    shown = plain(spans)
    for word in words:
        if "`" not in word and ":" not in word:
            assert word in shown


def test_every_golden_message_parses_into_spans_that_read_like_it() -> None:
    for path in (ROOT / "tests" / "golden").glob("*/*.json"):  # Slack's: <provider>/<case>
        golden = json.loads(path.read_text())
        for block in golden["blocks"]:
            inner = block.get("text")
            text = inner.get("text") if isinstance(inner, dict) else None
            if block["type"] == "section" and text:
                read = plain(parse(text))
                assert "&amp;" not in read and "&lt;" not in read, (path.name, text)
