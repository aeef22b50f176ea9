"""Escaping for templates: how a value from an event becomes text in a message, safely.

Everything a template outputs is mrkdwn inside a JSON string literal. `SlackText` is Markup
that holds such text already escaped; a plain value passes through `finalize` (`finalize`),
which escapes it for mrkdwn (`&`, `<`, `>`) and for JSON. The renderer's own filters record the
control sequences they produce (links, dates) with `allow`, for `mrkdwn.neutralize` to keep;
any other `<...>` in the output came from data by some path and is shown as text.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from json.decoder import scanstring  # type: ignore[attr-defined]
from json.encoder import encode_basestring
from typing import Any

from markupsafe import Markup

from relay.render import mrkdwn

ALLOWED: ContextVar[set[str] | None] = ContextVar("relay_allowed_sequences", default=None)
# set while rendering a message whose ids must read in full (a digest line lists many events,
# and ids that differ only where `short_id` cuts would read as identical lines)
FULL_IDS: ContextVar[bool] = ContextVar("relay_full_ids", default=False)
# the event being rendered: what the shared layout reads, so that templates may import it
# without their context (an import with context is evaluated again at every render, a quarter
# of a render's time; one without is compiled once)
EVENT: ContextVar[Any] = ContextVar("relay_event", default=None)


def current_event() -> Any:
    """The event being rendered (None outside a render)."""
    return EVENT.get()


def to_text(value: Any) -> str:
    """How a value reads in a message: None is empty, bools are `true`/`false`."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class SlackText(Markup):
    """Markup holding text that is already mrkdwn-escaped and escaped for a JSON string.

    Its `escape` (used by `+`, `%`, `.join` and `.format`) escapes plain strings the Slack way
    instead of the HTML way.
    """

    __slots__ = ()

    @classmethod
    def escape(cls, s: Any) -> SlackText:
        if hasattr(s, "__html__"):
            return cls(s.__html__())
        # `cls(text)` for a plain str, without Markup.__new__'s checks in Python
        return str.__new__(cls, mrkdwn_json(to_text(s)))


def json_escape(text: str) -> str:
    """The inside of a JSON string literal for `text`: what `json.dumps(text,
    ensure_ascii=False)` writes, through the C function it calls for a string (json.dumps
    builds an encoder on every call, a tenth of a render's time with ~40 values a message)."""
    return encode_basestring(text)[1:-1]


def mrkdwn_json(text: str) -> str:
    return json_escape(mrkdwn.escape(text))


def unjson(value: Any) -> str:
    """The text a Markup value stands for (undoing the JSON string escaping)."""
    text = str(value)
    if "\\" not in text:  # no escape to undo: the JSON string literal reads as its own text
        return text
    # `json.loads(f'"{text}"')` without json.loads' own steps around the string scanner (half
    # the cost): the literal must end exactly at the closing quote, as json.loads requires
    try:
        decoded, end = scanstring(text + '"', 0, True)
    except ValueError:
        return text
    return decoded if end == len(text) + 1 else text


def raw_text(value: Any) -> str:
    """What a value shows as, without any escaping (Markup is decoded, entities undone)."""
    if hasattr(value, "__html__"):
        return unjson(value).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return to_text(value)


def finalize(value: Any) -> Any:
    if hasattr(value, "__html__"):
        return value
    return SlackText.escape(value)


def allow(token: str) -> str:
    allowed = ALLOWED.get()
    if allowed is not None:
        allowed.add(token)
    return token
