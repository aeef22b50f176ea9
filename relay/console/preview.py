"""A message as the console previews it: the parts a chat shows (header with the status emoji,
summary, errors, fields, sections, details, buttons, context, repeat counter) as plain text, for
the event page's template to lay out like a chat message beside the raw payload.

relay's markup becomes the text a reader sees (`relay.render.formats.text`, as dry-run prints
it); the template escapes every string; a button is a link only when its URL is an absolute
http(s) one (`relay.console.views.safe_url`), else its URL is shown as text. A message that is
Block Kit already (a user's Slack template) is read block by block, as dry-run does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relay.console.views import safe_url
from relay.messages import Card, message_from_json
from relay.render import markup
from relay.render.formats.text import Where, inert, readable, text


@dataclass(frozen=True, slots=True)
class ButtonShown:
    text: str
    url: str  # as the message holds it
    href: str | None  # the URL when it may be a link
    style: str


@dataclass(frozen=True, slots=True)
class Preview:
    status: str
    emoji: str
    title: str
    summary: str = ""
    errors: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    sections: tuple[str, ...] = ()
    details: tuple[tuple[str, str], ...] = ()
    buttons: tuple[ButtonShown, ...] = ()
    context: str = ""
    repeat: str = ""
    mentions: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()  # a Block Kit message: its lines as a reader sees them


def _plain(written: str | None) -> str:
    return inert(text(written)) if written else ""


def preview(stored: Mapping[str, Any], destination: str) -> Preview:
    """The preview of a stored (chat-neutral) message."""
    message = message_from_json(stored)
    if not isinstance(message, Card):
        lines = readable(message, Where(destination)).rstrip("\n").split("\n")[1:]
        return Preview("info", "", "", lines=tuple(lines), mentions=message.mentions)
    repeat = ""
    if message.repeat is not None:
        r = message.repeat
        repeat = f"🔁 Seen {r.count} times"
    return Preview(
        status=message.status,
        emoji=markup.status_unicode(message.status),
        title=inert(message.title),
        summary=_plain(message.summary),
        errors=_plain(message.errors),
        fields=tuple((_plain(f.label), _plain(f.value)) for f in message.fields),
        sections=tuple(_plain(s) for s in message.sections),
        details=tuple((_plain(d.label), inert(d.code)) for d in message.details),
        buttons=tuple(
            ButtonShown(inert(b.text), b.url, safe_url(b.url), b.style or "")
            for b in message.buttons
        ),
        context=_plain(message.context),
        repeat=repeat,
        mentions=message.mentions,
    )
