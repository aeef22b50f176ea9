"""Discord's format: relay's cards as embeds and link buttons, golden payloads of the built-in
templates, and hostile event data through every built-in template: no mention formed, no link
but relay's own, always within Discord's limits, always accepted by the fake Discord.

Golden files: tests/golden/discord/<provider>/<case>.json hold the template and the payload
Discord is sent. After an intended change, regenerate them and review the diff:

    RELAY_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_discord_format.py
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from fakediscord import FakeDiscord, check_payload, size
from harness import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from test_hostile import (
    ANCHOR_TYPES,
    DECK_TYPES,
    HOSTILE,
    RUNTIME,
    SAMPLES,
    WRONG,
    every_leaf,
    hostile_events,
    urls_in,
    with_leaves,
)
from test_templates import CASES

from relay.event import Event
from relay.messages import Blocks, Button, Card, Detail, Field, Repeat
from relay.render.formats.discord import mentions, payload, takes_mention, thread_name
from relay.render.formats.discord_markdown import escape, write
from relay.render.markup import Code, Date, Link, Styled, Text, parse
from relay.render.renderer import FALLBACK, Renderer

GOLDEN = ROOT / "tests" / "golden" / "discord"
UPDATE = os.environ.get("RELAY_UPDATE_GOLDEN") == "1"
RENDERER = Renderer()
JOINER = "\u200d"
GOLDEN_CASES = {
    "anchor/task.failed": (),
    "anchor/intervention.requested": ("@here", "discord:role:123456789012345678"),
    "anchor/session.recording.ready": (),
    "deck/task_run.failed": ("discord:user:223456789012345678",),
    "deck/credential.invalid": (),
    "tabstack/run.completed": (),
}
DISCORD_HOSTILE = [
    *HOSTILE, "@everyone", "@here", "<users/all>", "[click](https://evil.example)", "<at>x</at>",
    "<!channel>", "@alice", "<@123456789012345678>", "<#123456789012345678>", "<t:1:R>",
    "-# small", "# Heading", "> quoted", "||spoiler||", "**bold** __u__", "https://evil.example/x",
    "`code` ``` fence", "\\", "x" * 10_000,
]  # fmt: skip


# ---------------------------------------------------------------- golden payloads


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_builtin_templates_make_the_golden_discord_payloads(name: str) -> None:
    rendered = RENDERER.render(CASES[name])
    assert rendered.error is None and rendered.template != FALLBACK
    message = replace(rendered.message, mentions=GOLDEN_CASES[name])
    got = {"template": rendered.template, "payload": payload(message)}
    assert check_payload(got["payload"]) == {}
    golden = GOLDEN / f"{name}.json"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}; run with RELAY_UPDATE_GOLDEN=1"
    assert json.loads(golden.read_text(encoding="utf-8")) == got


def test_every_discord_golden_file_has_a_case() -> None:
    names = {p.relative_to(GOLDEN).with_suffix("").as_posix() for p in GOLDEN.rglob("*.json")}
    assert names == set(GOLDEN_CASES)


def test_a_card_reads_as_an_embed_with_its_status_fields_footer_and_buttons() -> None:
    card = RENDERER.render(CASES["anchor/task.failed"]).message
    embed = payload(card)["embeds"][0]
    assert embed["title"] == "❌ Task failed: invalid credentials"
    assert embed["color"] == 0xE01E5A
    assert "**invalid credentials**" in embed["description"]
    assert "> Login rejected: wrong password" in embed["description"]
    assert {"name": "Duration", "value": "1m 1s", "inline": True} in embed["fields"]
    assert embed["footer"]["text"].startswith("anchor · evt_")
    assert embed["timestamp"].startswith("20")  # the context's date, in the reader's zone
    (row,) = payload(card)["components"]
    assert row["components"][0]["style"] == 5
    assert row["components"][0]["url"].startswith("https://")


# ---------------------------------------------------------------- markdown and mentions


@pytest.mark.parametrize("char", list("\\*_~|><#-+[]()`"))
def test_every_markdown_character_of_event_text_is_escaped(char: str) -> None:
    assert escape(f"a{char}b") == f"a\\{char}b"


def test_event_text_cannot_mention_link_or_show_a_timestamp() -> None:
    text = write(
        parse("@everyone <@1234567> [click](https://evil.example) &lt;t:1:R&gt; https://x.y"),
        4096,
    )
    assert "@everyone" not in text and f"@{JOINER}everyone" in text
    assert f"\\<@{JOINER}1234567\\>" in text and "\\<t:1:R\\>" in text
    assert "\\[click\\]\\(https\\://evil.example\\)" in text
    assert "https\\://x.y" in text  # shown, not linked


def test_relay_links_and_dates_become_discord_links_and_timestamps() -> None:
    spans = [Link("https://app.example/a_(b)", "Open *it*"), Text(" "), Date(1716553080, "x")]
    assert write(spans, 4096) == "[Open \\*it\\*](https://app.example/a_%28b%29) <t:1716553080:f>"
    assert write([Link("https://app.example/x", "")], 100) == "<https://app.example/x>"
    # a label that is a URL would promise where the link goes: the link's own URL is shown
    assert write([Link("https://a.example/", "https://b.example/")], 100) == "<https://a.example/>"


def test_code_cannot_end_early() -> None:
    assert write([Code("a`b")], 100) == "`a\u02cbb`"
    block = write([Code("x ``` y ````", block=True)], 100)
    assert block.startswith("```\n") and block.endswith("\n```")
    assert "``" not in block[3:-3]


def test_long_text_is_cut_visibly_and_never_inside_an_escape_or_a_style() -> None:
    spans = [Styled("bold", (Text("*" * 50),)), Text(" tail")]
    for limit in range(1, 60):
        text = write(spans, limit)
        assert size(text) <= limit
        assert text.endswith("…")
        assert not text.rstrip("…").endswith("\\") or text.rstrip("…").endswith("\\\\")
        assert text.count("**") in (0, 2)


def test_mentions_come_from_the_config_names_only() -> None:
    said = mentions(
        ["@here", "@channel", "discord:user:123456789", "discord:role:987654321", "U0123ABCD"]
    )
    assert said.text == "@here @everyone <@123456789> <@&987654321>"
    assert said.allowed == {
        "parse": ["everyone"], "users": ["123456789"], "roles": ["987654321"],
    }  # fmt: skip
    assert mentions([]).allowed == {"parse": []}
    assert [n for n in ("@here", "discord:user:1234567", "U0123ABCD", "mattermost:bob")
            if takes_mention(n)] == ["@here", "discord:user:1234567"]  # fmt: skip


def test_every_payload_carries_allowed_mentions_even_without_any() -> None:
    for message in (Card("info", "x"), Blocks("hello <!channel>")):
        assert payload(message)["allowed_mentions"] == {"parse": []}
        assert payload(message)["content"] == ""


def test_block_kit_from_a_user_template_shows_its_text_safely() -> None:
    out = payload(Blocks("*Deploy* @everyone <https://ci.example/1|build>", ({"type": "x"},)))
    (embed,) = out["embeds"]
    assert embed["description"] == f"**Deploy** @{JOINER}everyone [build](https://ci.example/1)"


def test_a_repeated_card_carries_its_counter_as_timestamps() -> None:
    card = Card("failure", "Task failed", repeat=Repeat(5, 1716553080.0, 1716556680.0))
    (field,) = payload(card)["embeds"][0]["fields"]
    assert field["name"] == "🔁 Seen 5 times"
    assert field["value"] == "first <t:1716553080:f> · last <t:1716556680:f>"


def test_buttons_fill_rows_of_five_and_a_link_too_long_for_a_button_stays_in_the_text() -> None:
    long_url = "https://app.example/" + "a" * 600
    buttons = tuple(Button(f"B{i}", f"https://app.example/{i}") for i in range(7))
    out = payload(Card("info", "x", buttons=(*buttons, Button("Long", long_url))))
    assert [len(r["components"]) for r in out["components"]] == [5, 2]
    assert f"<{long_url}>" in out["embeds"][0]["description"]
    assert check_payload(out) == {}


def test_thread_names_are_plain_and_short() -> None:
    assert (
        thread_name(Card("info", "Task *failed*  @everyone")) == f"Task *failed* @{JOINER}everyone"
    )
    assert len(thread_name(Card("info", "x" * 300))) == 100
    assert thread_name(Blocks("")) == "relay"


def test_text_of_control_characters_alone_leaves_no_field_empty() -> None:
    # found by the property test below: a value of "\x1b" came out "" after the last clean
    # pass, and Discord refuses an empty field value (50035, BASE_TYPE_REQUIRED)
    card = Card("info", "x", summary="\x07", fields=(Field("\x1b", "\x1b\x00"),))
    out = payload(card)
    assert check_payload(out) == {}
    (field,) = out["embeds"][0]["fields"]
    assert field["name"] and field["value"]
    assert not re.search(r"[\x00-\x1f]", json.dumps(out, ensure_ascii=False))


def test_the_biggest_card_stays_within_every_limit() -> None:
    huge = "y" * 10_000
    card = Card(
        "failure", huge, fact=huge, summary=huge, errors=huge,
        fields=tuple(Field(huge, huge) for _ in range(40)), sections=(huge, huge),
        details=(Detail(huge, huge),), buttons=tuple(Button(huge, "https://a.example/" + huge)
                                                     for _ in range(40)),
        context=huge, repeat=Repeat(2, 0, 1), mentions=("@here",) * 500,
    )  # fmt: skip
    out = payload(card)
    assert check_payload(out) == {}
    (embed,) = out["embeds"]
    assert len(embed["fields"]) == 25
    assert embed["fields"][-1]["name"] == "🔁 Seen 2 times"
    assert embed["fields"][-2]["value"] == "17 more fields"  # 23 of 40 shown
    assert embed["description"].endswith("…")


# ---------------------------------------------------------------- hostile data


_ESCAPED = re.compile(r"\\.", re.S)
_CODE = re.compile(r"```.*?```|`[^`]*`", re.S)
_MASKED = re.compile(r"\[((?:\\.|[^\]\\])*)\]\(([^)\s]+)\)")
_ANGLED = re.compile(r"<(https?://[^>\s]+)>")


def markdown_texts(out: dict[str, Any]) -> list[str]:
    texts = []
    for embed in out["embeds"]:
        texts += [embed.get("title", ""), embed.get("description", "")]
        for item in embed.get("fields", []):
            texts += [item["name"], item["value"]]
    return texts


def plain_texts(out: dict[str, Any]) -> list[str]:
    texts: list[str] = []
    for embed in out["embeds"]:
        texts.append(embed.get("footer", {}).get("text", ""))
    texts += [b["label"] for row in out["components"] for b in row["components"]]
    return texts


def assert_discord_safe(
    out: dict[str, Any], allowed_urls: set[str], names: tuple[str, ...] = ()
) -> None:
    """Discord takes it, it pings and shows only the config's mentions, and its only links
    are relay's links to URLs the event gave as URLs, and its only timestamps relay's."""
    assert check_payload(out) == {}
    expected = mentions(names)
    assert out["content"] == expected.text
    assert out["allowed_mentions"] == expected.allowed
    urls = {u.replace("(", "%28").replace(")", "%29") for u in allowed_urls}
    shown = plain_texts(out)  # where Discord reads no markdown
    for text in markdown_texts(out):
        rest = _CODE.sub("", _ESCAPED.sub("", text))  # escaped characters and code mean nothing
        shown.append(rest)  # inside code a mention is not even highlighted
        for label, url in _MASKED.findall(rest):
            assert url in urls, (url, text[:200])
            assert "://" not in _ESCAPED.sub("", label)
        rest = _MASKED.sub("", rest)
        for url in _ANGLED.findall(rest):
            assert url in urls, (url, text[:200])
        rest = _ANGLED.sub("", rest)
        rest = re.sub(r"<t:\d+:f>", "", rest)  # relay's own dates
        assert "<" not in rest and "](" not in rest and "://" not in rest, text[:300]
    for text in shown:
        assert re.search(f"@(?!{JOINER})", text) is None, text[:300]


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text()
json_values = st.recursive(
    json_scalars | st.sampled_from(DISCORD_HOSTILE),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=6),
    max_leaves=30,
)  # fmt: skip
NAMES = st.lists(
    st.sampled_from(["@here", "@channel", "@everyone", "discord:user:123456789012345678",
                     "discord:role:223456789012345678", "U0123ABCD", "mattermost:bob"]),
    max_size=4,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    provider=st.sampled_from(["anchor", "deck"]),
    index=st.integers(min_value=0),
    data=json_values,
    leaf=json_values,
    names=NAMES,
)
def test_every_template_with_any_data_is_safe_for_discord(
    provider: str, index: int, data: Any, leaf: Any, names: list[str]
) -> None:
    for event in hostile_events(provider, index, data, leaf, text="@everyone <!channel> hi"):
        message = RUNTIME.renderer.render(event).message
        out = payload(replace(message, mentions=tuple(names)))
        assert_discord_safe(out, urls_in(event.data), tuple(names))


@pytest.mark.parametrize("provider", ["anchor", "deck"])
def test_every_template_takes_wrong_types_for_discord(provider: str) -> None:
    for kind in ANCHOR_TYPES if provider == "anchor" else DECK_TYPES:
        sample = json.loads((SAMPLES / provider / f"{kind}.json").read_text())["data"]
        for leaf in [*WRONG, *DISCORD_HOSTILE]:
            event = Event(provider, provider, "evt_w", kind, every_leaf(sample, leaf))
            out = payload(RUNTIME.renderer.render(event).message)
            assert_discord_safe(out, urls_in(event.data))


@pytest.fixture(scope="module")
def discord() -> Iterator[FakeDiscord]:
    with FakeDiscord(rate_limits=False) as fake:
        yield fake


@pytest.mark.parametrize("provider", ["anchor", "deck"])
def test_the_fake_discord_accepts_every_template_with_hostile_data(
    discord: FakeDiscord, provider: str
) -> None:
    discord.reset()
    sent = 0
    with httpx.Client() as client:
        for kind in ANCHOR_TYPES if provider == "anchor" else DECK_TYPES:
            sample = json.loads((SAMPLES / provider / f"{kind}.json").read_text())["data"]
            for leaf in ("x" * 10_000, "[click](https://evil.example) @everyone <@1234567>"):
                event = Event(provider, provider, "evt_f", kind, with_leaves(sample, leaf))
                message = replace(RUNTIME.renderer.render(event).message, mentions=("@here",))
                answer = client.post(
                    discord.url("alerts"),
                    params={"wait": "true", "with_components": "true"},
                    json=payload(message),
                )
                assert answer.status_code == 200, (kind, answer.text[:500])
                sent += 1
    assert len(discord.messages) == sent
    assert all(r.allowed_mentions_sent for r in discord.requests)
