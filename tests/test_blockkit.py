"""Block Kit fitting: every limit of SLACK.md is enforced by fixing, or refused with a reason."""

from __future__ import annotations

import re
from typing import Any

import pytest

from relay.render.blockkit import MAX_BLOCKS_JSON, UnfixableMessage, blocks_size, fit


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(text: str, url: str = "https://x.example", action_id: str = "a") -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "url": url,
            "action_id": action_id}  # fmt: skip


def test_valid_message_is_unchanged() -> None:
    message = {"text": "hi", "blocks": [section("hello"), {"type": "divider"}]}
    assert fit(message) == message


def test_section_text_cut_to_3000_with_ellipsis() -> None:
    fixed = fit({"text": "t", "blocks": [section("x" * 5000)]})
    text = fixed["blocks"][0]["text"]["text"]
    assert len(text) == 3000
    assert text.endswith("…")


def test_fields_cut_to_2000_and_more_than_ten_continue_in_new_sections() -> None:
    fields = [{"type": "mrkdwn", "text": f"f{i}" + "y" * 2500} for i in range(23)]
    fixed = fit({"text": "t", "blocks": [{"type": "section", "fields": fields}]})
    counts = [len(b["fields"]) for b in fixed["blocks"] if b["type"] == "section"]
    assert counts[:2] == [10, 10] or counts[0] == 10
    assert all(len(f["text"]) <= 2000 for b in fixed["blocks"] for f in b.get("fields", []))
    assert blocks_size(fixed["blocks"]) <= MAX_BLOCKS_JSON


def test_empty_texts_are_dropped_never_sent() -> None:
    blocks = [
        section(""),
        section("   "),
        {"type": "section", "text": {"type": "mrkdwn", "text": ""}, "fields": [
            {"type": "mrkdwn", "text": ""}, {"type": "mrkdwn", "text": "ok"}]},
        {"type": "header", "text": {"type": "plain_text", "text": ""}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": ""}]},
        {"type": "actions", "elements": [button("")]},
    ]  # fmt: skip
    fixed = fit({"text": "t", "blocks": blocks})
    assert fixed["blocks"] == [{"type": "section", "fields": [{"type": "mrkdwn", "text": "ok"}]}]


def test_header_is_plain_text_one_line_at_most_150() -> None:
    header = {"type": "header", "text": {"type": "mrkdwn", "text": "*a*\n" + "h" * 300}}
    fixed = fit({"text": "t", "blocks": [header]})["blocks"][0]["text"]
    assert fixed["type"] == "plain_text"
    assert len(fixed["text"]) == 150
    assert "\n" not in fixed["text"]


def test_context_at_most_ten_elements() -> None:
    elements = [{"type": "mrkdwn", "text": str(i)} for i in range(14)]
    fixed = fit({"text": "t", "blocks": [{"type": "context", "elements": elements}]})
    assert len(fixed["blocks"][0]["elements"]) == 10


def test_actions_limits_unsafe_urls_and_unique_action_ids() -> None:
    elements = [button("b" * 100, action_id="same") for _ in range(30)]
    elements.insert(0, button("evil", url="javascript:alert(1)"))
    elements.insert(1, button("spaced", url="https://x.example/a b"))
    fixed = fit({"text": "t", "blocks": [{"type": "actions", "elements": elements}]})
    kept = fixed["blocks"][0]["elements"]
    assert len(kept) == 25
    assert len({e["action_id"] for e in kept}) == 25
    assert all(len(e["text"]["text"]) == 75 for e in kept)
    assert all(e["url"] == "https://x.example" for e in kept)


def test_url_over_3000_drops_the_button() -> None:
    long_url = "https://x.example/" + "a" * 3000
    fixed = fit(
        {
            "text": "t",
            "blocks": [section("s"), {"type": "actions", "elements": [button("b", long_url)]}],
        }
    )
    assert fixed["blocks"] == [section("s")]


def test_more_than_50_blocks_cut_with_a_note() -> None:
    fixed = fit({"text": "t", "blocks": [section(str(i)) for i in range(70)]})
    assert len(fixed["blocks"]) == 50
    assert fixed["blocks"][-1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "…truncated"}],
    }
    assert fixed["blocks"][48] == section("48")


def test_total_size_kept_under_budget_by_dropping_trailing_blocks() -> None:
    fixed = fit({"text": "t", "blocks": [section(f"{i}" + "z" * 2900) for i in range(10)]})
    assert blocks_size(fixed["blocks"]) <= MAX_BLOCKS_JSON
    assert fixed["blocks"][0]["text"]["text"].startswith("0zzz")
    assert fixed["blocks"][-1]["elements"][0]["text"] == "…truncated"
    assert 3 <= len(fixed["blocks"]) <= 5


def test_fallback_text_cut_and_derived_when_missing() -> None:
    assert len(fit({"text": "w" * 10000, "blocks": []})["text"]) == 3000
    derived = fit({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "H"}}]})
    assert derived["text"] == "H"


def test_duplicate_block_ids_are_renamed() -> None:
    blocks = [section("a") | {"block_id": "b"}, section("c") | {"block_id": "b"}]
    fixed = fit({"text": "t", "blocks": blocks})
    assert [b["block_id"] for b in fixed["blocks"]] == ["b", "b-2"]


def test_images_need_safe_url_and_alt_text() -> None:
    blocks = [
        {"type": "image", "image_url": "https://x.example/i.png", "alt_text": "chart"},
        {"type": "image", "image_url": "file:///etc/passwd", "alt_text": "x"},
        {"type": "image", "image_url": "https://x.example/i.png", "alt_text": ""},
    ]
    fixed = fit({"text": "t", "blocks": blocks})
    assert fixed["blocks"] == blocks[:1]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ([], "message must be a JSON object"),
        ({"text": "t", "blocks": "x"}, "'blocks' must be a list"),
        ({"text": "t", "blocks": [1]}, "blocks[0] must be an object"),
        ({"text": "t", "blocks": [{"text": "x"}]}, "blocks[0] has no 'type'"),
        ({"text": "t", "blocks": [{"type": "carousel"}]}, "unknown block type 'carousel'"),
        ({"blocks": [{"type": "divider"}]}, "no text"),
        ({"text": "", "blocks": []}, "no text"),
    ],
)
def test_unfixable_messages_say_why(message: Any, reason: str) -> None:
    with pytest.raises(UnfixableMessage, match=re.escape(reason)):
        fit(message)


def test_input_is_not_modified() -> None:
    blocks = [section("x" * 4000)]
    fit({"text": "t", "blocks": blocks})
    assert len(blocks[0]["text"]["text"]) == 4000
