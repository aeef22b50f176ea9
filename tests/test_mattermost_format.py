"""Mattermost's format: golden posts for a few event types, the escaping of event text (no
mention, link or Slack sequence can come from an event, by Mattermost's own reading of the post,
in both modes), mentions only from the config's names, the limits (trimmed visibly, never split
by the server), and every built-in template with hostile or wrong-typed data accepted by the
fake Mattermost."""

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
from fakemattermost import (
    ALERTS,
    DEFAULT_HOOKS,
    TOKEN,
    FakeMattermost,
    links_in,
    mention_texts,
    mentions_in,
    slack_compatible,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from test_hostile import HOSTILE, RUNTIME, WRONG, every_leaf, hostile_events, urls_in

from relay.event import Event, parse_time
from relay.messages import Blocks, Button, Card, Detail, Field, Message, Repeat
from relay.planning import plan
from relay.render.formats.mattermost import (
    ATTACHMENT_BUDGET,
    MAX_FOOTER,
    MAX_MESSAGE,
    mention_text,
    payload,
    takes_mention,
)
from relay.render.formats.mattermost_text import Writer, escape, escape_atoms, url_text
from relay.render.markup import parse
from relay.render.renderer import Renderer

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "relay" / "samples"
GOLDEN = ROOT / "tests" / "golden" / "mattermost"
UPDATE = os.environ.get("RELAY_UPDATE_GOLDEN") == "1"
HOOK = next(iter(DEFAULT_HOOKS))
USERS = ["alice", "bob"]
MATTERMOST_HOSTILE = [
    *HOSTILE, "@everyone", "@here", "@channel", "@all", "<users/all>",
    "[click](https://evil.example)", "<at>x</at>", "<!channel>", "@alice", "x" * 10_000,
    "\\@here", "&#64;here", "_@here_", "x.@all", "<@alice000000000000000000000>",
    "<https://evil.example|click>", "https://evil.example/x", "www.evil.example",
    "mailto:a@evil.example", "a@evil.example", "![img](https://evil.example/i.png)",
    "# heading", "> quote", "| a | b |", "~~~", "&lt;!here&gt;",
]  # fmt: skip
RENDERER = Renderer()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMattermost]:
    with FakeMattermost() as server:
        yield server


def sample_event(provider: str, kind: str) -> Event:
    body = json.loads((SAMPLES / provider / f"{kind}.json").read_text(encoding="utf-8"))
    created = body.get("created_at") if provider == "deck" else body.get("created")
    return Event(
        provider, provider, str(body["id"]), str(body["type"]), body.get("data") or {},
        created=parse_time(created), text=body.get("text"), envelope=body,
    )  # fmt: skip


def texts_of(native: dict[str, Any]) -> list[str]:
    """Every string of a payload that a person or Mattermost reads."""
    found = [native["text"]]
    for attachment in native["attachments"]:
        found += [v for k, v in attachment.items() if isinstance(v, str) and k != "color"]
        for item in attachment.get("fields", ()):
            found += [item["title"], item["value"]]
    return found


def markdown_texts(native: dict[str, Any]) -> list[str]:
    """The strings Mattermost reads as Markdown (the rest it shows as they are)."""
    return mention_texts(native["text"], native["attachments"])


def assert_safe(
    native: dict[str, Any], allowed_urls: set[str], mentions: frozenset[str] = frozenset()
) -> None:
    """Within Mattermost's limits, and, read as Mattermost reads it (through the API, and
    through a webhook's Slack compatibility first): no mention but the config's, no link but to
    a URL the event gave as one."""
    assert len(native["text"]) <= MAX_MESSAGE
    for attachment in native["attachments"]:
        assert len(attachment.get("footer", "")) <= MAX_FOOTER
    assert sum(len(t) for t in texts_of(native)) - len(native["text"]) <= ATTACHMENT_BUDGET
    allowed = {url_text(u) for u in allowed_urls}
    for convert in (lambda t: t, slack_compatible):
        texts = [convert(t) for t in markdown_texts(native)]
        assert mentions_in(texts, USERS) == mentions, texts
        for text in texts:
            assert set(links_in(text)) <= allowed, (links_in(text), text)
    for text in texts_of(native):  # no Slack sequence a webhook would turn into a mention
        assert not re.findall(r"<[!@#]", text), text


def post_both_ways(fake: FakeMattermost, native: dict[str, Any]) -> None:
    """The fake takes the payload as one post, through the API and through a webhook."""
    fake.reset()
    with httpx.Client(timeout=10) as client:
        api = client.post(
            fake.url + "/api/v4/posts",
            json={"channel_id": ALERTS, "message": native["text"],
                  "props": {"attachments": native["attachments"]}},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )  # fmt: skip
        assert api.status_code == 201, api.text
        hook = client.post(fake.webhook_url(HOOK), json=dict(native))
        assert hook.status_code == 200 and hook.text == "ok", hook.text
    assert [p.split for p in fake.posts] == [False, False]


# ---------------------------------------------------------------- golden posts

GOLDEN_CASES = {
    "anchor/task.failed": sample_event("anchor", "task.failed"),
    "anchor/task.completed": sample_event("anchor", "task.completed"),
    "anchor/intervention.requested": sample_event("anchor", "intervention.requested"),
    "deck/task_run.failed": sample_event("deck", "task_run.failed"),
    "deck/credential.invalid": sample_event("deck", "credential.invalid"),
}


def golden_message(name: str) -> Message:
    if name == "anchor/task.failed.repeated":
        card = RENDERER.render(GOLDEN_CASES["anchor/task.failed"]).message
        assert isinstance(card, Card)
        return replace(
            card, mentions=("@here", "mattermost:alice", "U0123ABCD"),
            repeat=Repeat(3, 1_779_625_085.0, 1_779_628_685.0),
        )  # fmt: skip
    return RENDERER.render(GOLDEN_CASES[name]).message


@pytest.mark.parametrize("name", [*sorted(GOLDEN_CASES), "anchor/task.failed.repeated"])
def test_golden_posts(name: str, fake: FakeMattermost) -> None:
    native = dict(payload(golden_message(name)))
    golden = GOLDEN / f"{name}.json"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(native, indent=2, ensure_ascii=False) + "\n", "utf-8")
    assert golden.exists(), f"no golden file {golden}; run with RELAY_UPDATE_GOLDEN=1"
    assert json.loads(golden.read_text(encoding="utf-8")) == native
    post_both_ways(fake, native)


def test_a_card_reads_as_one_post_with_an_attachment() -> None:
    card = Card(
        "failure", "Task failed", fact="`tsk_1` · wrong password",
        summary="The site *rejected* the login.", errors=":rotating_light: *bad*\n>wrong",
        fields=(Field("Task", "`tsk_1`"), Field("Why", ("a long explanation " * 5).strip())),
        sections=("_Pages_\n• one",), details=(Detail("Data", '{"a": 1}'),),
        buttons=(Button("Open session", "https://app.example/s/1"),),
        context="anchor · `evt_1` · <!date^1779625085^{date_short_pretty}|2026-05-24 12:18 UTC>",
    )  # fmt: skip
    native = payload(card)
    assert native["text"] == "❌ **Task failed** — `tsk_1` · wrong password"
    (attachment,) = native["attachments"]
    assert attachment == {
        "fallback": "❌ Task failed — tsk_1 · wrong password",
        "color": "#D0021B",
        "text": "The site **rejected** the login.\n\n🚨 **bad**\n> wrong\n\n_Pages_\n• one"
        '\n\n**Data**\n```\n{"a": 1}\n```\n\n[Open session](https://app.example/s/1)',
        "fields": [
            {"title": "Task", "value": "`tsk_1`", "short": True},
            {"title": "Why", "value": ("a long explanation " * 5).strip(), "short": False},
        ],
        "footer": "anchor · evt_1 · 2026-05-24 12:18 UTC",
    }


def test_a_block_kit_message_shows_its_text_without_the_blocks() -> None:
    message = Blocks(
        "*Deploy* done <!here> <https://ci.example/1|build>",
        blocks=({"type": "section", "text": {"type": "mrkdwn", "text": "hidden"}},),
        mentions=("@channel",),
    )
    native = payload(message)
    assert native == {
        "text": "@channel **Deploy** done &lt;!here> [build](https://ci.example/1)",
        "attachments": [],
    }
    assert mentions_in([slack_compatible(native["text"])], USERS) == {"@channel"}


# ---------------------------------------------------------------- mentions


def test_mentions_come_from_the_config_names_in_mattermosts_form() -> None:
    names = ("@here", "@channel", "@everyone", "mattermost:alice", "U0123ABCD", "discord:user:1")
    assert mention_text(names) == "@here @channel @all @alice"
    assert [takes_mention(n) for n in names] == [True, True, True, True, False, False]
    native = payload(Card("warning", "Heads up", mentions=names))
    assert native["text"].startswith("@here @channel @all @alice ⚠️ ")
    assert mentions_in([native["text"]], USERS) == {"@here", "@channel", "@all", "@alice"}


@pytest.mark.parametrize("hostile", MATTERMOST_HOSTILE)
def test_event_text_never_mentions_or_links_in_any_part_of_a_card(hostile: str) -> None:
    from relay.render.mrkdwn import escape as mrkdwn_escape

    value = mrkdwn_escape(hostile)  # as every value from an event reaches a card
    card = Card(
        "failure", hostile, fact=value, summary=value, errors=value,
        fields=(Field(value, value), Field("x", f"*{value}*")), sections=(f"_{value}_",),
        details=(Detail(value, hostile),), buttons=(Button(hostile, "https://ok.example/"),),
        context=value, repeat=Repeat(2, 0.0, 1.0),
    )  # fmt: skip
    native = dict(payload(card))
    assert_safe(native, {"https://ok.example/"})


def test_escapes_are_what_mattermost_shows_literally() -> None:
    assert escape("@here") == "@\u200dhere"
    assert escape("<!channel> <@U1>") == "&lt;!channel> &lt;@\u200dU1>"
    assert escape("[x](https://e.example)") == "\\[x\\]\\(https\\://e.example\\)"
    assert escape("www.e.example mailto:a") == "www\\.e.example mailto\\:a"
    assert escape("12:30, note: ok") == "12:30, note: ok"  # no scheme, nothing to escape
    assert escape("&#64;here &amp; me") == "\\&#64;here \\&amp; me"
    assert escape("# big", line_start=True) == "\\# big"
    assert escape("1. item", line_start=True) == "1\\. item"
    assert escape("a # b - c") == "a # b - c"  # only at a line's start
    assert escape("*_~`|\\") == "\\*\\_\\~\\`\\|\\\\"


def test_the_fakes_reading_of_mentions_is_mattermosts() -> None:
    """The checks above rely on `mentions_in`: it finds what the server would notify."""
    assert mentions_in(["hi @here", "`@all` in code"], USERS) == {"@here"}
    assert mentions_in(["\\@channel", "&#64;alice.", "_@bob_", "x.@all"], USERS) == {
        "@channel", "@alice", "@bob", "@all"
    }  # fmt: skip
    assert mentions_in(["@nobody", "@\u200dhere", "mail a@alice.example"], USERS) == set()
    assert mentions_in([slack_compatible("<!here> <@alice000000000000000000000>")], USERS) == {
        "@here", "@alice"
    }  # fmt: skip
    assert links_in("[a](https://x.example) <https://y.example> www.z.example") == [
        "https://x.example", "https://y.example", "www.z.example"
    ]  # fmt: skip
    assert links_in("\\[a\\]\\(https\\://x.example\\) `https://y.example`") == []


# ---------------------------------------------------------------- limits


def test_long_texts_are_cut_visibly_within_the_limits(fake: FakeMattermost) -> None:
    huge = "word " * 10_000
    card = Card(
        "info", "t" * 400, fact=huge, summary=huge, errors=huge,
        fields=tuple(Field(f"f{i}", huge) for i in range(30)), sections=(huge, huge),
        details=(Detail("d", "`" * 5 + huge),), context=huge,
    )  # fmt: skip
    native = dict(payload(card))
    assert_safe(native, set())
    assert native["text"].endswith("…")
    (attachment,) = native["attachments"]
    assert attachment["text"].endswith("…")
    assert attachment["footer"].endswith("…") and len(attachment["footer"]) == MAX_FOOTER
    assert all(f["value"].endswith("…") for f in attachment["fields"])
    post_both_ways(fake, native)


def test_a_cut_closes_what_it_opened() -> None:
    card = Card(
        "info",
        "t",
        summary="*" + ("bold " * 2000).strip() + "*",
        sections=("`" + "c" * 9000 + "`",),
    )
    text = payload(card)["attachments"][0]["text"]
    summary, section, *_ = text.split("\n\n")
    assert summary.startswith("**") and summary.endswith("…**")
    assert section.startswith("`c") and section.endswith("…`")


# characters each of which `escape_atoms` treats in its own way, and plain ones
_TRICKY = st.text(alphabet=st.sampled_from(list("ab1 .:_*~<@&#>-+=\\`[]()|\n\r\x00\u200dw")))


@settings(max_examples=300, deadline=None)
@given(_TRICKY, st.booleans())
def test_escaping_a_whole_text_equals_escaping_it_character_by_character(
    text: str, line_start: bool
) -> None:
    assert escape(text, line_start) == "".join(escape_atoms(text, line_start))


class _AtomByAtom(Writer):
    """The writer with every text and code written a character (or escape) at a time."""

    def _whole(self, atoms: str) -> bool:
        return False


@settings(max_examples=300, deadline=None)
@given(_TRICKY, st.integers(1, 60))
def test_texts_written_whole_read_as_written_atom_by_atom(text: str, limit: int) -> None:
    """The writer puts a text or code that fits in one piece; cut or not, the post and where a
    line starts are those of writing it a character (or escape) at a time."""
    spans = parse(text)
    whole, by_atom = Writer(limit), _AtomByAtom(limit)
    whole.spans(spans)
    by_atom.spans(spans)
    assert (whole.result, whole.cut, whole.line_start) == (
        by_atom.result,
        by_atom.cut,
        by_atom.line_start,
    )


def test_the_fake_splits_or_refuses_a_text_over_the_limit_as_mattermost_does(
    fake: FakeMattermost,
) -> None:
    """So that "accepted by the fake" above means "one post within the limit"."""
    fake.reset()
    with httpx.Client(timeout=10) as client:
        hook = client.post(fake.webhook_url(HOOK), json={"text": "a" * (MAX_MESSAGE + 1)})
        api = client.post(
            fake.url + "/api/v4/posts",
            json={"channel_id": ALERTS, "message": "a" * (MAX_MESSAGE + 1)},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert hook.text == "ok" and [p.split for p in fake.posts] == [True, True]
    assert api.status_code == 400 and api.json()["id"] == "model.post.is_valid.msg.app_error"


def test_an_untitled_card_still_reads_as_a_post() -> None:
    assert payload(Card("info", " "))["text"] == "ℹ️ "  # noqa: RUF001


def test_a_message_text_over_the_limit_is_cut_not_split(fake: FakeMattermost) -> None:
    message = Blocks("a " * 20_000, mentions=("@here",))
    native = payload(message)
    assert len(native["text"]) <= MAX_MESSAGE and native["text"].endswith("…")
    assert native["text"].startswith("@here a a")
    post_both_ways(fake, dict(native))


# ---------------------------------------------------------------- every template, hostile data

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text()
json_values = st.recursive(
    json_scalars | st.sampled_from(MATTERMOST_HOSTILE),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=30,
)
ANCHOR_TYPES = sorted(p.stem for p in (SAMPLES / "anchor").glob("*.json"))
DECK_TYPES = sorted(p.stem for p in (SAMPLES / "deck").glob("*.json"))
CONFIGURED = ("@here", "mattermost:alice")


@settings(max_examples=100, deadline=None)
@given(
    provider=st.sampled_from(["anchor", "deck"]),
    index=st.integers(min_value=0),
    data=json_values,
    leaf=json_values,
)
def test_every_template_with_hostile_data_is_safe_and_accepted(
    fake: FakeMattermost, provider: str, index: int, data: Any, leaf: Any
) -> None:
    for event in hostile_events(provider, index, data, leaf, text="<!channel> @here hi"):
        for target in RUNTIME.router.decide(event).targets:
            card = RUNTIME.renderer.render(event, template=target.template).message
            for mentions in ((), CONFIGURED):
                native = dict(payload(replace(card, mentions=mentions)))
                expected = frozenset({"@here", "@alice"} if mentions else ())
                assert_safe(native, urls_in(event.data), expected)
            post_both_ways(fake, native)


@pytest.mark.parametrize("provider", ["anchor", "deck"])
def test_every_template_takes_wrong_types_for_mattermost(provider: str) -> None:
    for kind in ANCHOR_TYPES if provider == "anchor" else DECK_TYPES:
        sample = json.loads((SAMPLES / provider / f"{kind}.json").read_text())["data"]
        for leaf in WRONG:
            event = Event(provider, provider, "evt_w", kind, every_leaf(sample, leaf))
            for message in plan(RUNTIME, event).messages:
                configured = frozenset((mention_text(message.message.mentions) or "").split())
                assert_safe(dict(payload(message.message)), urls_in(event.data), configured)
