"""Microsoft Teams: a card as the Adaptive Card a Workflows (Power Automate) webhook posts, with
the route's mentions in Teams' own form, packed within what Teams takes. Pure.

The shape is the one Workflows' "Post card in a chat or channel" step reads:
`{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
"content": <AdaptiveCard>}]}` (without the attachments wrapper the flow fails), card version 1.4
(1.5 shows "this card couldn't be displayed" through Power Automate), `msteams.width: Full`.

A card becomes a header (a container in the status colour, `good`, `warning` or `attention`,
holding the status emoji and the title), its summary and errors, its fields two by two in
column sets, its other sections, its details as monospace text, its context line and, once it
was repeated, a "Seen N times" line; its buttons become `Action.OpenUrl` actions (http(s) only).

Safety, the one rule this module keeps: every text that may hold event data is written as
`TextRun`s of a `RichTextBlock` (`textruns`), which Adaptive Cards show without Markdown, so no
event text can form a link, a style or a mention. The only `TextBlock` is the mention line, made
from the config's names alone: Teams pings only for an `<at>name</at>` in a TextBlock or FactSet
paired with an `msteams.entities` mention (Microsoft's "Format cards in Teams", mention support,
which also takes a user principal name or an Entra object id as the mention's id), so that is
the one place a mention can be.

Teams has no form for broadcasts (`@here`, `@channel`, `@everyone`): `takes_mention` says so,
and `relay check` warns. Config names `teams:USER@DOMAIN` or `teams:USER@DOMAIN|Display name`
mention that user (by UPN or Entra object id).

Size: Teams refuses a message near 28 KB (Microsoft documents 28 KB for webhooks; rejections are
reported near 27.7 KB), so a payload is packed under `LIMIT` bytes of JSON counted in the
longest form any encoder sends (ASCII-escaped, spaced separators): texts are cut with "…"
(tighter and tighter), and when that is not enough the last parts go, with a note that says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from relay.event import JsonValue
from relay.messages import Card, Detail, JsonObject, Message
from relay.render.formats.textruns import Writer, open_url
from relay.render.markup import EMOJI, decode, parse, status_unicode

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
VERSION = "1.4"
LIMIT = 26_000  # bytes of JSON, well under the ~27.7 KB where Teams refuses
TRIMMED = "… trimmed: the message was too long for Teams"

# status -> the colour name of its header (container style and title colour)
COLOURS = {
    "success": "good",
    "healed": "good",
    "failure": "attention",
    "attention": "attention",
    "warning": "warning",
    "waiting": "warning",
    "stopping": "warning",
    "cancelled": "warning",
}
_BUTTON_STYLES = {"primary": "positive", "danger": "destructive"}

# characters shown per part at scale 1; packing scales them down until the card fits
_TITLE, _TEXT, _LABEL, _VALUE, _CODE, _CONTEXT, _BUTTON = 250, 4000, 200, 1500, 4000, 1000, 100
_SCALES = (1.0, 0.5, 0.25, 0.12, 0.06)

# what is dropped from a mention's label: it sits in a TextBlock, which reads Markdown
_LABEL_DROP = re.compile(r"[\\*_~`\[\]()#!]")


class TeamsPayload(TypedDict):
    """What a Workflows webhook takes: a message with one Adaptive Card attachment."""

    type: str
    attachments: list[JsonObject]


def takes_mention(name: str) -> bool:
    """Whether Teams has a form for a config mention name: only `teams:` users (a broadcast
    such as `@here` has none in Teams)."""
    return name.startswith("teams:")


@dataclass(frozen=True, slots=True)
class Mention:
    """One user to mention: `id` (a UPN or an Entra object id) and the name shown."""

    id: str
    name: str

    @property
    def tag(self) -> str:
        label = _LABEL_DROP.sub("", self.name).strip() or "user"
        return f"<at>{label}</at>"


def mentions(names: Sequence[str]) -> list[Mention]:
    """The config's `teams:` names as users to mention (others are left out), each once."""
    found: dict[str, Mention] = {}
    for given in names:
        if not takes_mention(given):
            continue
        user, _, display = given.removeprefix("teams:").partition("|")
        if user and user not in found:
            found[user] = Mention(user, display.strip() or user)
    return list(found.values())


def payload(message: Message) -> TeamsPayload:
    """The Workflows payload for a message, with its mentions, within Teams' size."""
    people = mentions(message.mentions)
    if isinstance(message, Card):
        parts = _card_parts(message)
    else:  # Block Kit is Slack's alone: Teams is shown its notification text
        parts = _Parts(texts=[_Part("text", message.text, _TEXT)])
    for scale in _SCALES:
        document = _payload(parts, people, scale)
        if size(document) <= LIMIT:
            return document
    return _dropped(parts, people, _SCALES[-1])


def size(document: Any) -> int:
    """Bytes of a payload's JSON in the longest form an encoder sends (ASCII-escaped)."""
    return len(json.dumps(document))


# ---------------------------------------------------------------- the parts of a card


@dataclass(frozen=True, slots=True)
class _Part:
    """A text in relay's markup, its kind (how it is laid out) and its budget at scale 1."""

    kind: str
    text: str
    budget: int
    label: str = ""


@dataclass(slots=True)
class _Parts:
    status: str | None = None
    title: str = ""
    texts: list[_Part] = field(default_factory=list)
    buttons: list[tuple[str, str, str | None]] = field(default_factory=list)


def _card_parts(card: Card) -> _Parts:
    parts = _Parts(status=card.status, title=card.title)
    texts = parts.texts
    texts += [_Part("text", t, _TEXT) for t in (card.summary, card.errors) if t]
    texts += [_Part("field", f.value, _VALUE, f.label) for f in card.fields]
    texts += [_Part("text", s, _TEXT) for s in card.sections]
    texts += [_detail(d) for d in card.details]
    if card.context:
        texts.append(_Part("context", card.context, _CONTEXT))
    if card.repeat is not None:
        r = card.repeat
        line = f"Seen {r.count} times · first {_utc(r.first_at)} · last {_utc(r.last_at)}"
        texts.append(_Part("repeat", line, _CONTEXT))
    for button in card.buttons:
        url = open_url(button.url)
        if url is not None and button.text.strip():
            parts.buttons.append((button.text, url, _BUTTON_STYLES.get(button.style or "")))
    return parts


def _detail(detail: Detail) -> _Part:
    return _Part("detail", detail.code, _CODE, detail.label)


def _utc(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------- building the payload


def _payload(
    parts: _Parts,
    people: list[Mention],
    scale: float,
    texts: int | None = None,
    buttons: int | None = None,
) -> TeamsPayload:
    """The payload at `scale`; with `texts` or `buttons`, only that many of the first ones,
    and a note saying the rest was trimmed."""
    body: list[JsonValue] = []
    if people:
        body.append({"type": "TextBlock", "text": " ".join(p.tag for p in people), "wrap": True})
    if parts.status is not None:
        body.append(_header(parts.status, parts.title, scale))
    body += _laid_out(parts.texts[:texts], scale)
    if texts is not None or buttons is not None:
        body.append(_note(TRIMMED))
    if not body:  # Block Kit without a notification text: a card is never empty
        body.append(_rich([]))
    card: JsonObject = {"type": "AdaptiveCard", "version": VERSION, "body": body}
    shown = parts.buttons[:buttons]
    if shown:
        card["actions"] = [_action(text, url, style, scale) for text, url, style in shown]
    msteams: JsonObject = {"width": "Full"}
    if people:
        msteams["entities"] = [
            {"type": "mention", "text": p.tag, "mentioned": {"id": p.id, "name": p.name}}
            for p in people
        ]
    card["msteams"] = msteams
    attachment: JsonObject = {"contentType": CONTENT_TYPE, "content": card}
    return TeamsPayload(type="message", attachments=[attachment])


def _dropped(parts: _Parts, people: list[Mention], scale: float) -> TeamsPayload:
    """At the smallest scale, the last texts go first (the context, details, sections...),
    then the last buttons, until the card fits; the header and mentions always stay."""
    for texts in range(len(parts.texts) - 1, -1, -1):
        document = _payload(parts, people, scale, texts=texts)
        if size(document) <= LIMIT:
            return document
    for buttons in range(len(parts.buttons) - 1, -1, -1):
        document = _payload(parts, people, scale, texts=0, buttons=buttons)
        if size(document) <= LIMIT:
            return document
    return _payload(parts, people, scale, texts=0, buttons=0)


def _header(status: str, title: str, scale: float) -> JsonObject:
    colour = COLOURS.get(status)
    writer = Writer(_scaled(_TITLE, scale))
    writer.add(f"{status_unicode(status)} {title}", weight="bolder", size="large")
    if colour is not None:
        for run in writer.runs:
            run["color"] = colour
    return {
        "type": "Container",
        "style": colour or "emphasis",
        "bleed": True,
        "items": [_rich(writer.runs)],
    }


def _laid_out(texts: list[_Part], scale: float) -> list[JsonValue]:
    out: list[JsonValue] = []
    fields: list[JsonValue] = []
    for part in texts:
        if part.kind != "field" and fields:
            out += _rows(fields)
            fields = []
        if part.kind == "field":
            fields.append(_field(part, scale))
        elif part.kind == "detail":
            out.append(_detail_block(part, scale))
        elif part.kind in ("context", "repeat"):
            writer = Writer(_scaled(part.budget, scale), isSubtle=True, size="small")
            if part.kind == "repeat":
                writer.add(f"{EMOJI['repeat']} {part.text}")
            else:
                writer.spans(parse(part.text))
            out.append({**_rich(writer.runs), "separator": True})
        else:
            writer = Writer(_scaled(part.budget, scale))
            writer.spans(parse(part.text))
            if writer.runs:
                out.append(_rich(writer.runs))
    return out + _rows(fields)


def _field(part: _Part, scale: float) -> JsonValue:
    writer = Writer(_scaled(_LABEL, scale))
    writer.spans(parse(part.label), weight="bolder")
    writer.budget(_scaled(part.budget, scale))
    writer.add("\n")
    writer.spans(parse(part.text))
    return {"type": "Column", "width": "stretch", "items": [_rich(writer.runs)]}


def _rows(columns: list[JsonValue]) -> list[JsonValue]:
    """Fields two by two, as Slack shows them."""
    return [
        {"type": "ColumnSet", "columns": columns[start : start + 2]}
        for start in range(0, len(columns), 2)
    ]


def _detail_block(part: _Part, scale: float) -> JsonValue:
    writer = Writer(_scaled(_LABEL, scale))
    writer.spans(parse(part.label), weight="bolder")
    writer.budget(_scaled(part.budget, scale))
    writer.add("\n")
    writer.add(decode(part.text), fontType="monospace")  # escaped like all markup
    return {"type": "Container", "style": "emphasis", "items": [_rich(writer.runs)]}


def _action(text: str, url: str, style: str | None, scale: float) -> JsonValue:
    writer = Writer(_scaled(_BUTTON, scale))
    writer.add(text.replace("\n", " "))
    title = "".join(str(run["text"]) for run in writer.runs)
    action: JsonObject = {"type": "Action.OpenUrl", "title": title, "url": url}
    if style is not None:
        action["style"] = style
    return action


def _note(text: str) -> JsonObject:
    run: JsonObject = {"type": "TextRun", "text": text, "isSubtle": True, "italic": True}
    return {"type": "RichTextBlock", "inlines": [run]}


def _rich(runs: list[JsonObject]) -> JsonObject:
    inlines: list[JsonValue] = list(runs) or [{"type": "TextRun", "text": " "}]
    return {"type": "RichTextBlock", "inlines": inlines}


def _scaled(budget: int, scale: float) -> int:
    return max(8, int(budget * scale))
