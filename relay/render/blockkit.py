"""Block Kit validation: fit a rendered message into Slack's limits, or say why it cannot be.

`fit` returns a fixed copy of `{text, blocks}`: over-long texts truncated with `…`, empty text
objects and unsafe buttons dropped, too many fields split over sections, duplicate ids renamed,
and a message that is too big cut after its last block that fits with a context note
`…truncated`. Problems that no cut can fix (a block that is not an object, an unknown block type,
no text at all) raise `UnfixableMessage`; the renderer then sends its safe default message.
Limits are those of SLACK.md.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

from relay.render.mrkdwn import safe_url, truncate, truncate_mrkdwn

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 3000
MAX_ACTIONS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_URL = 3000
MAX_ACTION_ID = 255
MAX_BLOCK_ID = 255
MAX_ALT_TEXT = 2000
MAX_MARKDOWN_BLOCK = 12000
# Slack answers `msg_blocks_too_long` near 13k characters; stay clearly below.
MAX_BLOCKS_JSON = 12000
MAX_FALLBACK_TEXT = 3000

TRUNCATED_NOTE = "…truncated"

_PASS_THROUGH = frozenset({"divider", "rich_text", "video", "file", "input", "table"})
_SDK_CHECKED = frozenset({"section", "header", "context", "actions", "divider", "image"})


class UnfixableMessage(ValueError):
    """The rendered message is not a Block Kit message that any truncation could repair."""


def fit(
    message: Any,
    *,
    sdk_check: bool = True,
    copy_blocks: bool = True,
    size_at_most: int | None = None,
) -> dict[str, Any]:
    """A copy of `message` that Slack accepts, or `UnfixableMessage` saying what is wrong.

    `sdk_check=False` skips slack-sdk's model check of each block (for trusted templates);
    `copy_blocks=False` fixes the blocks in place, for blocks built for this call alone;
    `size_at_most`: a bound the caller knows on the blocks' size (`blocks_size`) once fixed
    (fixing only cuts and drops), so that a message clearly within the limit is not measured:
    measuring encodes the blocks as JSON, a third of the cost of a Slack payload."""
    if not isinstance(message, Mapping):
        raise UnfixableMessage(f"message must be a JSON object, got {type(message).__name__}")
    raw_blocks = message.get("blocks", [])
    if raw_blocks is None:
        raw_blocks = []
    if not isinstance(raw_blocks, list):
        raise UnfixableMessage(f"'blocks' must be a list, got {type(raw_blocks).__name__}")
    blocks: list[dict[str, Any]] = []
    for index, block in enumerate(raw_blocks):
        blocks.extend(_fix_block(index, copy.deepcopy(block) if copy_blocks else block))
    _unique_block_ids(blocks)
    if size_at_most is None or size_at_most > MAX_BLOCKS_JSON or len(blocks) > MAX_BLOCKS:
        blocks = _fit_size(blocks)
    for index, block in enumerate(blocks if sdk_check else ()):
        _sdk_check(index, block)
    text = _fallback_text(message.get("text"), blocks)
    return {"text": text, "blocks": blocks}


def note_block(text: str = TRUNCATED_NOTE) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def blocks_size(blocks: list[dict[str, Any]]) -> int:
    """How long the blocks are as Slack counts them (characters of their JSON)."""
    return len(json.dumps(blocks, ensure_ascii=False, separators=(",", ":")))


# --- per block -----------------------------------------------------------------------------


def _fix_block(index: int, block: Any) -> list[dict[str, Any]]:
    if not isinstance(block, dict):
        raise UnfixableMessage(f"blocks[{index}] must be an object, got {type(block).__name__}")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise UnfixableMessage(f"blocks[{index}] has no 'type'")
    fixer = _FIXERS.get(kind)
    if fixer is not None:
        return fixer(block)
    if kind in _PASS_THROUGH:
        return [block]
    raise UnfixableMessage(f"blocks[{index}]: unknown block type '{kind}'")


def _text_object(obj: Any, limit: int, *, plain_only: bool = False) -> dict[str, Any] | None:
    """A valid text object cut to `limit`, or None when it is missing or empty."""
    if isinstance(obj, str):
        obj = {"type": "mrkdwn", "text": obj}
    if not isinstance(obj, dict):
        return None
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        return None
    kind = obj.get("type")
    if plain_only or kind not in ("mrkdwn", "plain_text"):
        kind = "plain_text" if plain_only else "mrkdwn"
    fixed = {**obj, "type": kind}
    if kind == "mrkdwn":
        fixed.pop("emoji", None)
        fixed["text"] = truncate_mrkdwn(text, limit)
    else:
        fixed.pop("verbatim", None)
        fixed["text"] = truncate(text, limit)
    return fixed


def _fix_section(block: dict[str, Any]) -> list[dict[str, Any]]:
    text = _text_object(block.get("text"), MAX_SECTION_TEXT) if "text" in block else None
    raw_fields = block.get("fields")
    fields: list[dict[str, Any]] = []
    if isinstance(raw_fields, list):
        for item in raw_fields:
            fixed = _text_object(item, MAX_FIELD_TEXT)
            if fixed is not None:
                fields.append(fixed)
    block.pop("text", None)
    block.pop("fields", None)
    if "accessory" in block:
        accessory = _fix_element(block["accessory"])
        if accessory is None:
            block.pop("accessory")
        else:
            block["accessory"] = accessory
    if text is None and not fields:
        return []
    first = dict(block)
    if text is not None:
        first["text"] = text
    if fields:
        first["fields"] = fields[:MAX_FIELDS]
    out = [first]
    # More than ten fields continue in plain sections of their own rather than being lost.
    for start in range(MAX_FIELDS, len(fields), MAX_FIELDS):
        out.append({"type": "section", "fields": fields[start : start + MAX_FIELDS]})
    return out


def _fix_header(block: dict[str, Any]) -> list[dict[str, Any]]:
    text = _text_object(block.get("text"), MAX_HEADER_TEXT * 4, plain_only=True)
    if text is None:
        return []
    # A header is one line: fold newlines and runs of spaces from data before measuring.
    text["text"] = truncate(" ".join(text["text"].split()), MAX_HEADER_TEXT)
    return [{**block, "text": text}]


def _fix_context(block: dict[str, Any]) -> list[dict[str, Any]]:
    raw = block.get("elements")
    elements: list[dict[str, Any]] = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and item.get("type") == "image":
            image = _fix_image_element(item)
            if image is not None:
                elements.append(image)
            continue
        fixed = _text_object(item, MAX_CONTEXT_TEXT)
        if fixed is not None:
            elements.append(fixed)
    if not elements:
        return []
    return [{**block, "elements": elements[:MAX_CONTEXT_ELEMENTS]}]


def _fix_actions(block: dict[str, Any]) -> list[dict[str, Any]]:
    raw = block.get("elements")
    elements: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in raw if isinstance(raw, list) else []:
        fixed = _fix_element(item)
        if fixed is None:
            continue
        action_id = fixed.get("action_id")
        if isinstance(action_id, str):
            fixed["action_id"] = _unique(action_id[:MAX_ACTION_ID], seen, MAX_ACTION_ID)
        elements.append(fixed)
        if len(elements) == MAX_ACTIONS:
            break
    if not elements:
        return []
    return [{**block, "elements": elements}]


def _fix_element(item: Any) -> dict[str, Any] | None:
    """An interactive element; buttons are checked closely, other kinds pass as they are."""
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        return None
    if item["type"] == "image":
        return _fix_image_element(item)
    if item["type"] != "button":
        return item
    text = _text_object(item.get("text"), MAX_BUTTON_TEXT, plain_only=True)
    if text is None:
        return None
    button = {**item, "text": text}
    if "url" in button:
        url = safe_url(button["url"], MAX_URL)
        if url is None:
            return None
        button["url"] = url
    value = button.get("value")
    if value is not None:
        if not isinstance(value, str) or not value:
            button.pop("value")
        else:
            button["value"] = value[:MAX_BUTTON_VALUE]
    if button.get("style") not in (None, "primary", "danger"):
        button.pop("style")
    return button


def _fix_image_element(item: dict[str, Any]) -> dict[str, Any] | None:
    url = safe_url(item.get("image_url"), MAX_URL)
    alt = item.get("alt_text")
    if url is None or not isinstance(alt, str) or not alt.strip():
        return None
    return {**item, "image_url": url, "alt_text": truncate(alt, MAX_ALT_TEXT)}


def _fix_image(block: dict[str, Any]) -> list[dict[str, Any]]:
    # Slack rejects the whole message when it cannot fetch an image: only well-formed ones stay.
    image = _fix_image_element(block)
    if image is None:
        return []
    if "title" in image:
        title = _text_object(image["title"], 2000, plain_only=True)
        if title is None:
            image.pop("title")
        else:
            image["title"] = title
    return [image]


def _fix_markdown(block: dict[str, Any]) -> list[dict[str, Any]]:
    text = block.get("text")
    if not isinstance(text, str) or not text.strip():
        return []
    return [{**block, "text": truncate_mrkdwn(text, MAX_MARKDOWN_BLOCK)}]


_FIXERS: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    "section": _fix_section,
    "header": _fix_header,
    "context": _fix_context,
    "actions": _fix_actions,
    "image": _fix_image,
    "markdown": _fix_markdown,
}


def _unique(value: str, seen: set[str], limit: int) -> str:
    candidate, n = value, 1
    while candidate in seen:
        n += 1
        suffix = f"-{n}"
        candidate = value[: limit - len(suffix)] + suffix
    seen.add(candidate)
    return candidate


def _unique_block_ids(blocks: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for block in blocks:
        block_id = block.get("block_id")
        if block_id is None:
            continue
        if not isinstance(block_id, str) or not block_id:
            block.pop("block_id")
            continue
        block["block_id"] = _unique(block_id[:MAX_BLOCK_ID], seen, MAX_BLOCK_ID)


# --- whole message -------------------------------------------------------------------------


def _fit_size(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep whole leading blocks within the block count and size budget, then a note."""
    if len(blocks) <= MAX_BLOCKS and blocks_size(blocks) <= MAX_BLOCKS_JSON:
        return blocks
    note = note_block()
    budget = MAX_BLOCKS_JSON - blocks_size([note])
    kept: list[dict[str, Any]] = []
    for block in blocks[: MAX_BLOCKS - 1]:
        if blocks_size([*kept, block]) > budget:
            break
        kept.append(block)
    if not kept:
        kept = [_shrink(blocks[0], budget)]
    return [*kept, note]


def _shrink(block: dict[str, Any], budget: int) -> dict[str, Any]:
    """A single block too big on its own (ten long fields): cut its texts until it fits."""
    for cap in (1000, 500, 200, 80):
        smaller = copy.deepcopy(block)
        if isinstance(smaller.get("text"), dict):
            smaller["text"]["text"] = truncate_mrkdwn(smaller["text"]["text"], cap * 2)
        for field in smaller.get("fields", []):
            field["text"] = truncate_mrkdwn(field["text"], cap)
        if blocks_size([smaller]) <= budget:
            return smaller
    raise UnfixableMessage("the first block is too large to fit in a message")


def _fallback_text(text: Any, blocks: list[dict[str, Any]]) -> str:
    """The notification text: the given one, else the header or first section's text."""
    if isinstance(text, str) and text.strip():
        return truncate_mrkdwn(text, MAX_FALLBACK_TEXT)
    for block in blocks:
        inner = block.get("text")
        if block.get("type") in ("header", "section") and isinstance(inner, dict):
            return truncate_mrkdwn(str(inner.get("text", "")), MAX_FALLBACK_TEXT)
    raise UnfixableMessage("the message has no text and no header or section to take it from")


def _sdk_check(index: int, block: dict[str, Any]) -> None:
    """slack-sdk's own model checks, as a second opinion on the common block types."""
    if block.get("type") not in _SDK_CHECKED:
        return
    try:
        parsed = Block.parse(block)
        if parsed is None:
            raise UnfixableMessage(f"blocks[{index}]: slack-sdk cannot read this block")
        parsed.to_dict()
    except (SlackObjectFormationError, KeyError, TypeError, ValueError) as exc:
        raise UnfixableMessage(f"blocks[{index}]: {exc}") from exc
