"""Slack: a card as Block Kit, and the route's mentions in Slack's own form.

A card becomes a header (its status emoji and title), its summary and errors, its fields two
by two in sections of ten, its other sections, its details as code blocks, its buttons in one
actions block and its context line; a repeated message carries a "Seen N times" context block.
Its texts are relay's markup, which is Slack's mrkdwn: they go in as they are. A message that
is Block Kit already (a user's template) is taken as it is. The route's mentions come first,
in the notification text and in a section of their own. `blockkit.fit` keeps the result within
Slack's limits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypedDict

from relay.event import JsonValue
from relay.messages import Blocks, Card, JsonObject, Message
from relay.render import mrkdwn
from relay.render.blockkit import fit
from relay.render.markup import status_shortcode


class SlackPayload(TypedDict):
    """What chat.postMessage (or an incoming webhook) takes, besides where and how."""

    text: str
    blocks: list[JsonObject]


COUNTER_BLOCK_ID = "relay-repeat"
_SEEN = re.compile(r" \(seen \d+ times\)$")
_FIELDS_PER_SECTION = 10


def takes_mention(name: str) -> bool:
    """Whether Slack has a form for a config mention name (a broadcast, or a Slack ID)."""
    return ":" not in name or name.startswith("slack:")


def mention_text(names: Sequence[str]) -> str | None:
    """Config mention names as Slack writes them: `@here` -> `<!here>`, `U1` -> `<@U1>`,
    `S1` -> `<!subteam^S1>`; names meant for another chat (`discord:...`) are left out."""
    out = []
    for given in names:
        if not takes_mention(given):
            continue
        name = given.removeprefix("slack:")
        if name.startswith("@"):
            out.append(f"<!{name[1:]}>")
        elif name.startswith("S"):
            out.append(f"<!subteam^{name}>")
        else:
            out.append(f"<@{name}>")
    return " ".join(out) or None


def payload(message: Message) -> SlackPayload:
    """The `{text, blocks}` Slack takes for a message, with its mentions."""
    if isinstance(message, Card):
        document = card_payload(message)
    else:
        document = SlackPayload(text=message.text, blocks=list(message.blocks))
    mention = mention_text(message.mentions)
    if mention is None:
        return document
    first: JsonObject = {"type": "section", "text": {"type": "mrkdwn", "text": mention}}
    text = f"{mention} {document['text']}"
    return _fitted({"text": text, "blocks": [first, *document["blocks"]]})


def _fitted(
    document: dict[str, Any], *, built_here: bool = False, size_at_most: int | None = None
) -> SlackPayload:
    # relay built it: slack-sdk's check adds nothing; blocks built here need no copy
    fixed = fit(document, sdk_check=False, copy_blocks=not built_here, size_at_most=size_at_most)
    return SlackPayload(text=fixed["text"], blocks=fixed["blocks"])


def card_payload(card: Card) -> SlackPayload:
    """A card as Block Kit, without mentions."""
    emoji = status_shortcode(card.status)
    text = f"{emoji} {mrkdwn.escape(card.title)}"
    if card.fact:
        text += f" — {card.fact}"
    blocks: list[JsonObject] = [_header(f"{emoji} {mrkdwn.truncate(card.title, 130)}")]
    blocks += [_section(t) for t in (card.summary, card.errors) if t]
    fields: list[JsonValue] = [
        {"type": "mrkdwn", "text": f"*{f.label}*\n{f.value}"} for f in card.fields
    ]
    for start in range(0, len(fields), _FIELDS_PER_SECTION):
        chunk = fields[start : start + _FIELDS_PER_SECTION]
        blocks.append({"type": "section", "fields": list(chunk)})
    blocks += [_section(s) for s in card.sections]
    blocks += [_section(f"*{d.label}*\n```{d.code}```") for d in card.details]
    if card.buttons:
        blocks.append({"type": "actions", "elements": [
            {
                "type": "button",
                "action_id": f"relay-link-{i}",
                "text": {"type": "plain_text", "text": b.text, "emoji": True},
                "url": b.url,
                **({"style": b.style} if b.style else {}),
            }
            for i, b in enumerate(card.buttons, start=1)
        ]})  # fmt: skip
    if card.context:
        blocks.append(_context(card.context))
    document = _fitted(
        {"text": text, "blocks": blocks}, built_here=True, size_at_most=_size_bound(card, blocks)
    )
    if card.repeat is None:
        return document
    return _counted(document, card.repeat.count, card.repeat.first_at, card.repeat.last_at)


# The most JSON any block, field or button of `card_payload` writes besides the card's texts
# (the longest, a button: `{"type":"button","action_id":"relay-link-25","text":{"type":
# "plain_text","text":"","emoji":true},"url":"","style":"primary"}`, is 120 characters).
_OVERHEAD = 300


def _size_bound(card: Card, blocks: list[JsonObject]) -> int:
    """More than the blocks of `card_payload` can take as JSON (`blockkit.blocks_size`): each
    character of the card's texts writes at most 6 (`\\u001f`), and each block, field or
    button at most `_OVERHEAD` more (the status emoji included). Cheaper than encoding them."""
    texts = [card.title, card.summary or "", card.errors or "", card.context or ""]
    texts += card.sections
    texts += [f.label + f.value for f in card.fields]
    texts += [d.label + d.code for d in card.details]
    texts += [b.text + b.url for b in card.buttons]
    parts = len(blocks) + len(card.fields) + len(card.buttons)
    return 6 * sum(len(t) for t in texts) + _OVERHEAD * parts


def counted(message: Blocks, count: int, first_at: float, last_at: float) -> Blocks:
    """Block Kit carrying (or replacing) the "Seen N times" counter of a repeated message."""
    document = SlackPayload(text=message.text, blocks=list(message.blocks))
    done = _counted(document, count, first_at, last_at)
    return replace(message, text=done["text"], blocks=tuple(done["blocks"]))


def _counted(document: SlackPayload, count: int, first_at: float, last_at: float) -> SlackPayload:
    line = f":repeat: Seen {count} times · first {_date(first_at)} · last {_date(last_at)}"
    counter: JsonObject = {
        "type": "context",
        "block_id": COUNTER_BLOCK_ID,
        "elements": [{"type": "mrkdwn", "text": line}],
    }
    blocks = [b for b in document["blocks"] if b.get("block_id") != COUNTER_BLOCK_ID]
    text = _SEEN.sub("", document["text"]) + f" (seen {count} times)"
    return SlackPayload(text=text[:3000], blocks=[*blocks[:49], counter])


def _date(when: float) -> str:
    return mrkdwn.date_token(datetime.fromtimestamp(when, UTC))


def _header(text: str) -> JsonObject:
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _section(text: str) -> JsonObject:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> JsonObject:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
