"""Mattermost: a card as a post's Markdown text and one Slack-style attachment, and the route's
mentions in Mattermost's own form. Pure.

The post's text (`text` for an incoming webhook, `message` for the REST API) is the line a
reader sees first and the one notifications show: the route's mentions, the status emoji, the
title in bold and the key fact (and " (seen N times)" on a repeated message). The attachment
carries the rest, coloured by status: the summary, errors, sections, details (as code blocks)
and buttons (as links: an attachment's own buttons need an integration to call back) in its
`text`, the card's fields as attachment `fields` (two abreast when short), and the context line
in its `footer` (after the "Seen N times · first … · last …" counter of a repeated message).
Dates are written in UTC (Mattermost has no date tokens); emoji as Unicode.

A message that is Block Kit (a user's template for Slack) cannot be shown: its notification
text is written, as Markdown, without the blocks.

Every text from relay's markup is escaped by `relay.render.formats.mattermost_text` (which says
what Mattermost would otherwise make of it): no mention, link or Slack sequence can come from an
event. Mentions come only from the config: `@here`, `@channel`, `@everyone` (written `@all`)
and `mattermost:USERNAME` (written `@USERNAME`).

Limits: a post's message is at most 16,383 characters (`model.post.is_valid.msg.app_error`
through the API; an incoming webhook instead splits a longer text into several posts), and
relay stays under it, cutting visibly with `…`. An attachment has no documented limit of its
own but the footer (the web app cuts it at 300 characters with `…`, relay does it first) and
the post's props (800,000 characters of JSON; 400,000 through a webhook, which moves further
attachments into more posts): relay keeps the whole attachment within one post's worth,
16,383 characters, so that a message reads as one post.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypedDict

from relay.messages import Card, JsonObject, Message
from relay.render.formats.mattermost_text import ELLIPSIS, Writer, markdown, plain_text
from relay.render.markup import (
    Break,
    Code,
    Link,
    Span,
    Styled,
    Text,
    parse,
    plain,
    status_unicode,
)

MAX_MESSAGE = 16_383  # characters (runes) in a post's message
ATTACHMENT_BUDGET = 16_383  # characters over all of the attachment's texts
MAX_FOOTER = 300  # the web app cuts a longer footer
MAX_FALLBACK = 500
MAX_FIELD_TITLE = 100
# each part's own share of the attachment, so that one long part cannot crowd out the rest
_PART = 4_000
_FIELD = 1_000
_ENOUGH = 16  # less room than this left: the remaining parts are left out (and say so)

BROADCASTS = {"@here": "@here", "@channel": "@channel", "@everyone": "@all"}
COLORS = {
    "success": "#2EB886",
    "healed": "#2EB886",
    "failure": "#D0021B",
    "attention": "#D0021B",
    "warning": "#F2A100",
    "waiting": "#F2A100",
    "stopping": "#F2A100",
    "cancelled": "#8D8D8D",
    "deleted": "#8D8D8D",
    "idle": "#8D8D8D",
}
DEFAULT_COLOR = "#1C58D9"  # information, progress, lifecycle


class MattermostPayload(TypedDict):
    """What an incoming webhook takes (the REST API takes the same as `message` and
    `props.attachments`), besides where and as whom."""

    text: str
    attachments: list[JsonObject]


def takes_mention(name: str) -> bool:
    """Whether Mattermost has a form for a config mention name: a broadcast, or
    `mattermost:USERNAME`."""
    return name in BROADCASTS or name.startswith("mattermost:")


def mention_text(names: Sequence[str]) -> str | None:
    """Config mention names as Mattermost writes them: `@everyone` -> `@all`,
    `mattermost:alice` -> `@alice`; names meant for another chat are left out."""
    out = [
        BROADCASTS.get(n) or "@" + n.removeprefix("mattermost:") for n in names if takes_mention(n)
    ]
    return " ".join(out) or None


def payload(message: Message) -> MattermostPayload:
    """The `{text, attachments}` Mattermost is sent for a message, with its mentions."""
    mention = mention_text(message.mentions)
    room = MAX_MESSAGE - (len(mention) + 1 if mention else 0)
    if isinstance(message, Card):
        text = headline(message, room)
        attachment = card_attachment(message)
        attachments = [attachment] if attachment else []
    else:  # Block Kit: only its notification text can be shown
        text = markdown(parse(message.text), room)[0]
        attachments = []
    if mention:
        text = f"{mention} {text}"
    return MattermostPayload(text=text, attachments=attachments)


def headline(card: Card, limit: int) -> str:
    """The post's own line: emoji, the title in bold, the key fact, the repeat count (relay's
    own words as they are: push notifications show the text as written)."""
    writer = Writer(limit)
    writer.put(status_unicode(card.status) + " ")
    title = " ".join(card.title.split())
    if title:
        writer.spans([Styled("bold", (Text(title),))])
    if card.fact:
        writer.put(" — ")
        writer.spans(parse(card.fact))
    if card.repeat is not None:
        writer.put(f" (seen {card.repeat.count} times)")
    return writer.result


def card_attachment(card: Card) -> JsonObject | None:
    """The attachment that carries the card's body, within `ATTACHMENT_BUDGET`."""
    fallback = plain_text(_notification(card), MAX_FALLBACK)
    footer = plain_text(_footer(card), MAX_FOOTER)
    parts = _Parts(ATTACHMENT_BUDGET - len(fallback) - len(footer))
    summary = parts.take(parse(card.summary or ""), _PART)
    errors = parts.take(parse(card.errors or ""), _PART)
    fields: list[JsonObject] = []
    for field in card.fields:
        title = plain_text(plain(parse(field.label)), MAX_FIELD_TITLE)
        value = parts.take(parse(field.value), _FIELD, extra=len(title))
        if value:
            fields.append({"title": title, "value": value, "short": _short(field.value)})
    buttons = parts.take(_links(card), _PART)
    sections = [parts.take(parse(s), _PART) for s in card.sections]
    details = [parts.take(_detail(d.label, d.code), _PART) for d in card.details]
    body = [summary, errors, *sections, *details, buttons]
    text = "\n\n".join(p for p in body if p)
    if parts.left_out:
        text = f"{text}\n\n{ELLIPSIS}" if text else ELLIPSIS
    color = COLORS.get(card.status, DEFAULT_COLOR)
    attachment: JsonObject = {"fallback": fallback, "color": color}
    if text:
        attachment["text"] = text
    if fields:
        attachment["fields"] = list(fields)
    if footer:
        attachment["footer"] = footer
    return attachment if text or fields or footer else None


class _Parts:
    """The attachment's budget, taken part by part in order of importance."""

    def __init__(self, budget: int) -> None:
        self.left = budget - len("\n\n" + ELLIPSIS)  # room to say that parts were left out
        self.left_out = False

    def take(self, spans: list[Span], share: int, extra: int = 0) -> str:
        if not spans:
            return ""
        room = min(share, self.left - extra - 2)  # 2: the blank line between parts
        if room < _ENOUGH:
            self.left_out = True
            return ""
        text = markdown(spans, room)[0].rstrip("\n")  # a code block ends with its own newline
        self.left -= len(text) + extra + 2
        return text


def _notification(card: Card) -> str:
    """The headline as plain text: what a notification shows."""
    text = f"{status_unicode(card.status)} {' '.join(card.title.split())}"
    if card.fact:
        text += " — " + plain(parse(card.fact))
    if card.repeat is not None:
        text += f" (seen {card.repeat.count} times)"
    return text


def _footer(card: Card) -> str:
    parts = []
    if card.repeat is not None:
        r = card.repeat
        parts.append(
            f"\U0001f501 Seen {r.count} times · first {_utc(r.first_at)} · last {_utc(r.last_at)}"
        )
    if card.context:
        parts.append(plain(parse(card.context)))
    return " · ".join(parts)


def _utc(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _short(value: str) -> bool:
    """A field value short enough to sit beside another."""
    shown = plain(parse(value))
    return len(shown) <= 40 and "\n" not in shown


def _links(card: Card) -> list[Span]:
    spans: list[Span] = []
    for i, button in enumerate(card.buttons):
        if i:
            spans.append(Text(" · "))
        spans.append(Link(button.url, button.text))
    return spans


def _detail(label: str, code: str) -> list[Span]:
    return [Styled("bold", tuple(parse(label))), Break(), Code(code, block=True)]
