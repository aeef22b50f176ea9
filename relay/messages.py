"""The rendered message that stages hand each other, before it is any chat's native format.

A `Card` is chat-neutral: a status, a plain title, and parts whose inline text is written in
relay's markup (`relay.render.markup`: Slack's mrkdwn, as relay's templates and filters write
it, with every value from an event already escaped). Each chat's formatter
(`relay.render.formats`) turns a card into that chat's native message: Block Kit, Discord
embeds, an Adaptive Card, Google Chat's cardsV2, Mattermost attachments. The built-in
templates make cards, through the shared layout (`_layout.j2`).

`Blocks` is a message in Slack's Block Kit, as a user's template may render it directly: only
Slack destinations can take it.

Mentions are not part of the rendered message: they come from the route (`mentions`, the
config's names such as `@here` or `U0123ABCD`), and each chat's formatter writes them in its
own form. `to_json`/`from_json` give the form the stores keep; a message stored by an earlier
relay (Block Kit with its mention already in it) reads back as `Blocks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from relay.event import JsonValue

JsonObject = dict[str, JsonValue]


@dataclass(frozen=True, slots=True)
class Field:
    """A labelled fact: `label` and `value` in relay's markup."""

    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Detail:
    """A block of code or JSON under a label (`code` is shown verbatim, as code)."""

    label: str
    code: str


@dataclass(frozen=True, slots=True)
class Button:
    """A link button: plain `text`, an http(s) `url`, optionally `primary` or `danger`."""

    text: str
    url: str
    style: str | None = None


@dataclass(frozen=True, slots=True)
class Repeat:
    """The counter a repeated message carries once it was seen again (epoch seconds)."""

    count: int
    first_at: float
    last_at: float


@dataclass(frozen=True, slots=True)
class Card:
    """A chat-neutral message. `title` is plain text; every other text is relay's markup."""

    status: str  # success, failure, warning, waiting, ... (`relay.render.formats.status`)
    title: str
    fact: str | None = None  # the key fact, after the title in the notification text
    summary: str | None = None
    errors: str | None = None
    fields: tuple[Field, ...] = ()
    sections: tuple[str, ...] = ()
    details: tuple[Detail, ...] = ()
    buttons: tuple[Button, ...] = ()
    context: str | None = None
    repeat: Repeat | None = None
    mentions: tuple[str, ...] = ()
    kind: Literal["card"] = field(default="card", init=False)

    def to_json(self) -> JsonObject:
        out: JsonObject = {"kind": "card", "status": self.status, "title": self.title}
        for name in ("fact", "summary", "errors", "context"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.fields:
            out["fields"] = [{"label": f.label, "value": f.value} for f in self.fields]
        if self.sections:
            out["sections"] = list(self.sections)
        if self.details:
            out["details"] = [{"label": d.label, "code": d.code} for d in self.details]
        if self.buttons:
            out["buttons"] = [
                {"text": b.text, "url": b.url, **({"style": b.style} if b.style else {})}
                for b in self.buttons
            ]
        if self.repeat is not None:
            r = self.repeat
            out["repeat"] = {"count": r.count, "first_at": r.first_at, "last_at": r.last_at}
        if self.mentions:
            out["mentions"] = list(self.mentions)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Card:
        repeat = obj.get("repeat")
        return cls(
            status=_text(obj.get("status")) or "info",
            title=_text(obj.get("title")),
            fact=_optional(obj.get("fact")),
            summary=_optional(obj.get("summary")),
            errors=_optional(obj.get("errors")),
            fields=tuple(
                Field(_text(f.get("label")), _text(f.get("value"))) for f in _objects(obj, "fields")
            ),
            sections=tuple(s for s in obj.get("sections") or () if isinstance(s, str) and s),
            details=tuple(
                Detail(_text(d.get("label")), _text(d.get("code")))
                for d in _objects(obj, "details")
            ),
            buttons=tuple(
                Button(_text(b.get("text")), _text(b.get("url")), _optional(b.get("style")))
                for b in _objects(obj, "buttons")
            ),
            context=_optional(obj.get("context")),
            repeat=Repeat(int(repeat["count"]), float(repeat["first_at"]), float(repeat["last_at"]))
            if isinstance(repeat, Mapping)
            else None,
            mentions=_names(obj.get("mentions")),
        )


@dataclass(frozen=True, slots=True)
class Blocks:
    """A message in Slack's Block Kit: the notification `text` and its `blocks`.

    `legacy_mention` is the mention an earlier relay already wrote into `text` and `blocks`
    (a digest lists such a message by `line`, its text without the mention)."""

    text: str
    blocks: tuple[JsonObject, ...] = ()
    mentions: tuple[str, ...] = ()
    legacy_mention: str | None = None
    line: str | None = None
    kind: Literal["blocks"] = field(default="blocks", init=False)

    def to_json(self) -> JsonObject:
        out: JsonObject = {"kind": "blocks", "text": self.text, "blocks": list(self.blocks)}
        if self.mentions:
            out["mentions"] = list(self.mentions)
        if self.legacy_mention is not None:
            out["mention"] = self.legacy_mention
        if self.line is not None:
            out["line"] = self.line
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Blocks:
        return cls(
            text=_text(obj.get("text")),
            blocks=tuple(b for b in obj.get("blocks") or () if isinstance(b, dict)),
            mentions=_names(obj.get("mentions")),
            legacy_mention=_optional(obj.get("mention")),
            line=_optional(obj.get("line")),
        )


Message = Card | Blocks


def message_from_json(obj: Mapping[str, Any]) -> Message:
    """A stored message: a card, or Block Kit (also the form every earlier relay stored)."""
    if obj.get("kind") == "card":
        return Card.from_json(obj)
    return Blocks.from_json(obj)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _optional(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _objects(obj: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return [item for item in obj.get(key) or () if isinstance(item, Mapping)]


def _names(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value or () if isinstance(v, str))
