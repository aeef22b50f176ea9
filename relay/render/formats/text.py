"""A message as a person reads it in a terminal: what dry-run prints instead of a chat's JSON.

A title line names the destination, its chat and channel (and the thread a reply goes under, or
the message an update replaces), then the message as the chat shows it: the mentions the chat
takes, the header (status emoji and title), the summary and errors, the fields as aligned
`label  value` lines, the other sections, the details as indented code, each button with its
URL, the context line and a repeated message's counter. A card is read from its chat-neutral
parts, so every chat's dry-run reads the same way; a message that is Block Kit already (a user's
Slack template) is read block by block. relay's markup (Slack's mrkdwn) becomes plain text:
links as `label <url>`, dates in UTC, emoji as Unicode.

Every string from an event stays inert in a terminal: control characters (escape sequences
start with one) and the bidirectional overrides are removed from the whole output, so nothing
but the newlines relay writes itself can move the cursor, change colours or reorder text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relay.messages import Blocks, Card, Message
from relay.render import markup
from relay.render.formats import discord, google_chat, mattermost, slack, teams
from relay.render.mrkdwn import safe_url

# whose mention names a chat takes (the others are left out of its message, as it sends it)
TAKES_MENTION: Mapping[str, Callable[[str], bool]] = {
    "slack": slack.takes_mention,
    "discord": discord.takes_mention,
    "teams": teams.takes_mention,
    "google_chat": google_chat.takes_mention,
    "mattermost": mattermost.takes_mention,
}

# C0 and C1 controls but the newline, DEL, and the bidirectional embeddings, overrides and
# isolates (they reorder what follows them on screen)
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Slack's mention sequences (`<!here>`, `<@U1>`, `<!subteam^S1>`) in Block Kit a template wrote;
# relay's own dates (`<!date^...>`) are left to `markup`
_SLACK_MENTION = re.compile(r"<(?:!subteam\^|[@#]|!(?!date\^))([^<>|]+)(?:\|[^<>]*)?>")


@dataclass(frozen=True, slots=True)
class Where:
    """Where a printed message would have gone, and how it joins its conversation."""

    destination: str
    chat: str = "slack"
    channel: str | None = None
    reply_to: str | None = None  # the id of the thread's parent
    update: str | None = None  # the id of the message it replaces
    broadcast: bool = False  # a reply also shown in the channel


def inert(text: str) -> str:
    """Text with nothing a terminal would act on but newlines (tabs become spaces)."""
    return _UNSAFE.sub("", text.replace("\t", "    "))


def readable(message: Message, where: Where) -> str:
    """The message as lines a person reads, after a title line saying where it goes."""
    lines = [_title(where)]
    names = [n for n in message.mentions if TAKES_MENTION.get(where.chat, slack.takes_mention)(n)]
    if names:
        lines.append(" ".join(_mention(n) for n in names))
    if isinstance(message, Card):
        lines += _card(message)
    else:
        lines += _blocks(message)
    return inert("\n".join(lines)) + "\n"


def _title(where: Where) -> str:
    chat = where.chat.replace("_", " ")
    parts = [where.destination, f"{chat} {where.channel}" if where.channel else chat]
    if where.update is not None:
        parts.append(f"updates {where.update}")
    elif where.reply_to is not None:
        also = ", also in the channel" if where.broadcast else ""
        parts.append(f"reply in thread {where.reply_to}{also}")
    return f"── {' · '.join(parts)} ──"


def _mention(name: str) -> str:
    """A config mention name as the chat shows it: `teams:alice@x|Alice` -> `@Alice`."""
    bare = name.split(":", 1)[1] if ":" in name else name
    bare = bare.rpartition("|")[2] or bare
    return bare if bare.startswith("@") else "@" + bare


def text(written: str) -> str:
    """relay's markup (Slack's mrkdwn) as the plain text a reader sees."""
    return _spans(markup.parse(_SLACK_MENTION.sub(r"@\1", written)))


def _spans(spans: Iterable[markup.Span]) -> str:
    out: list[str] = []
    for span in spans:
        if isinstance(span, markup.Text):
            out.append(span.text)
        elif isinstance(span, markup.Styled):
            out.append(_spans(span.children))
        elif isinstance(span, markup.Quote):
            out.append("> " + _spans(span.children))
        elif isinstance(span, markup.Code):
            out.append(_code(span.text) if span.block else span.text)
        elif isinstance(span, markup.Link):
            shown = span.label and span.label != span.url
            out.append(f"{span.label} <{span.url}>" if shown else span.url)
        elif isinstance(span, markup.Date):
            out.append(span.utc())
        elif isinstance(span, markup.Emoji):
            out.append(span.unicode)
        else:
            out.append("\n")
    return "".join(out)


def _code(code: str) -> str:
    return "\n" + "\n".join("    " + line for line in code.split("\n")) + "\n"


def _card(card: Card) -> list[str]:
    lines = [f"{markup.status_unicode(card.status)} {card.title}"]
    lines += [text(t) for t in (card.summary, card.errors) if t]
    lines += _fields([(text(f.label), text(f.value)) for f in card.fields])
    lines += [text(s) for s in card.sections]
    for detail in card.details:
        lines.append(text(detail.label) + ":" + _code(detail.code).rstrip("\n"))
    lines += [_button(b.text, b.url) for b in card.buttons]
    if card.context:
        lines.append(text(card.context))
    if card.repeat is not None:
        r = card.repeat
        lines.append(f"🔁 Seen {r.count} times · first {_utc(r.first_at)} · last {_utc(r.last_at)}")
    return lines


def _utc(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fields(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """`label  value` lines, the values aligned; a value of several lines is indented."""
    if not pairs:
        return []
    width = min(max(len(label) for label, _ in pairs), 24)
    lines = []
    for label, value in pairs:
        first, *rest = value.split("\n") or [""]
        lines.append(f"{label:<{width}}  {first}".rstrip())
        lines += [" " * (width + 2) + more for more in rest]
    return lines


def _button(label: str, url: Any) -> str:
    link = safe_url(url)
    return f"[ {label} ] {link}" if link else f"[ {label} ] (no link)"


def _blocks(message: Blocks) -> list[str]:
    if not message.blocks:
        return [text(message.text)]
    lines: list[str] = []
    for block in message.blocks:
        lines += _block(block)
    return lines


def _block(block: Mapping[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        return [_object_text(block.get("text"))]
    if kind == "section":
        lines = [_object_text(block.get("text"))] if block.get("text") else []
        pairs = [_field(f) for f in block.get("fields") or () if isinstance(f, Mapping)]
        lines += _fields(pairs)
        accessory = block.get("accessory")
        if isinstance(accessory, Mapping) and accessory.get("type") == "button":
            lines.append(_button(_object_text(accessory.get("text")), accessory.get("url")))
        return lines
    if kind == "actions":
        return [
            _button(_object_text(e.get("text")), e.get("url"))
            for e in block.get("elements") or ()
            if isinstance(e, Mapping) and e.get("type") == "button"
        ]
    if kind == "context":
        parts = [
            _object_text(e) if e.get("type") != "image" else f"[{e.get('alt_text', 'image')}]"
            for e in block.get("elements") or ()
            if isinstance(e, Mapping)
        ]
        return [" ".join(p for p in parts if p)]
    if kind == "divider":
        return ["─" * 40]
    if kind == "image":
        return [f"[image: {block.get('alt_text', '')}] {safe_url(block.get('image_url')) or ''}"]
    if kind == "rich_text":
        return ["".join(_rich(block.get("elements")))]
    return [f"[{kind} block]"]


def _field(field: Mapping[str, Any]) -> tuple[str, str]:
    """A section field as relay writes it (`*Label*\\nvalue`) is a label and a value."""
    shown = _object_text(field)
    label, sep, value = shown.partition("\n")
    return (label, value) if sep else ("", shown)


def _object_text(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return ""
    value = obj.get("text")
    if not isinstance(value, str):
        return ""
    return text(value) if obj.get("type") == "mrkdwn" else value


def _rich(elements: Any) -> Iterable[str]:
    """The text of rich_text elements, however deeply they nest."""
    for element in elements if isinstance(elements, list) else ():
        if not isinstance(element, Mapping):
            continue
        if isinstance(element.get("text"), str):
            yield element["text"]
        elif isinstance(element.get("url"), str):
            yield element["url"]
        yield from _rich(element.get("elements"))
        if element.get("type") in ("rich_text_section", "rich_text_preformatted"):
            yield "\n"
