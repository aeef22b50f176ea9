"""The one Event model every provider normalizes into, and helpers to read its data safely.

Also what "valid text" means for event strings. JSON can carry what no database text column
holds: a lone UTF-16 surrogate (`"\\ud800"`, or the bytes `ED A0 80`, which `json.loads` on
bytes lets through) cannot be encoded as UTF-8, and PostgreSQL's TEXT refuses NUL. An id or a
type that is not valid text is refused by the providers (`is_text`); free text is kept, and an
event as the stores hand it back (`from_record`) holds only valid text, each lone surrogate or
NUL shown as U+FFFD, while the request body itself stays byte-exact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# JSON as parsed: what event data is made of (untrusted, of any shape)
JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


@dataclass(frozen=True, slots=True)
class Event:
    """A verified, normalized event.

    `source` is the configured source name (the `{source}` of `/hooks/{source}`); `provider`
    the platform kind (`anchor`, `deck`, `tabstack`, `generic`). `data` holds the event-specific
    fields, `envelope` the whole parsed body, `text` the provider's own one-line summary.
    """

    source: str
    provider: str
    id: str
    type: str
    data: Mapping[str, JsonValue]
    created: datetime | None = None
    text: str | None = None
    envelope: Mapping[str, JsonValue] = field(default_factory=dict)
    # the request body `envelope` was parsed from, if any: stored as it came (`to_record`),
    # so that persisting an event before the 202 costs no JSON encoding
    body: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def entity(self) -> str:
        """The part of the type before the first `.` or `:` (`task` for `task.failed`)."""
        kind = self.type
        cut = len(kind)
        for sep in ".:":  # str.find rather than a loop over characters: asked at every render
            found = kind.find(sep, 0, cut)
            if found >= 0:
                cut = found
        return kind[:cut]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view, the same shape `from_json` reads back."""
        return {
            "source": self.source,
            "provider": self.provider,
            "id": self.id,
            "type": self.type,
            "created": self.created.isoformat() if self.created else None,
            "text": self.text,
            "data": dict(self.data),
            "envelope": dict(self.envelope),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Event:
        created = obj.get("created")
        return cls(
            source=str(obj["source"]),
            provider=str(obj["provider"]),
            id=str(obj["id"]),
            type=str(obj["type"]),
            data=dict(obj.get("data") or {}),
            created=parse_time(created) if created else None,
            text=obj.get("text"),
            envelope=dict(obj.get("envelope") or {}),
        )


# what no text column holds: a lone surrogate (not encodable as UTF-8) or NUL (PostgreSQL)
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def is_text(value: str) -> bool:
    """Whether a string can be stored and shown as it is (no lone surrogate, no NUL)."""
    if value.isascii():  # known without a scan (the usual case): no surrogate, look for NUL
        return "\x00" not in value
    return _NOT_TEXT.search(value) is None


def as_text(value: str) -> str:
    """`value` with each lone surrogate and NUL replaced by U+FFFD."""
    return value if is_text(value) else _NOT_TEXT.sub(REPLACEMENT, value)


def as_text_json(value: Any) -> Any:
    """A parsed JSON value (owned by the caller: changed in place) with every string, keys
    included, made valid text by `as_text`. Iterative, so any nesting json accepts is safe."""
    if isinstance(value, str):
        return as_text(value)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(is_text(key) for key in item):
                fixed = {as_text(key): child for key, child in item.items()}
                item.clear()
                item.update(fixed)
            for key, child in item.items():
                if isinstance(child, str):
                    if not is_text(child):
                        item[key] = as_text(child)  # an existing key: no resize while iterating
                elif isinstance(child, dict | list):
                    stack.append(child)
        elif isinstance(item, list):
            for index, child in enumerate(item):
                if isinstance(child, str):
                    if not is_text(child):
                        item[index] = as_text(child)
                elif isinstance(child, dict | list):
                    stack.append(child)
    return value


def json_text(value: Any) -> str:
    """`value` as JSON text a TEXT column holds: UTF-8 as it is, each lone surrogate U+FFFD.

    `ensure_ascii=False` keeps a lone surrogate as it is, and it can only stand inside a JSON
    string, so replacing it in the text keeps the JSON valid; NUL is escaped by json already."""
    return as_text(json.dumps(value, ensure_ascii=False))


# How the stores keep an event: its fields, and its payload the cheapest way there is
Record = tuple[str, str, str | None, str | None, bytes | None, str | None, str | None]


def to_record(event: Event) -> Record:
    """`(type, provider, created, text, body, envelope, data)` for the store; `from_record`
    reads it back. A webhook's envelope is its request body, kept as it came (no encoding);
    `data` is stored only when it is not the envelope's own `data` object. Every text is valid
    text (`as_text`); the id and type were checked by the provider."""
    envelope = None
    if event.body is None:
        envelope = json_text(dict(event.envelope))
    data = None
    if event.body is None or event.data is not event.envelope.get("data"):
        data = json_text(dict(event.data))
    created = event.created.isoformat() if event.created else None
    text = as_text(event.text) if event.text is not None else None
    return (event.type, event.provider, created, text, event.body, envelope, data)


def from_record(source: str, event_id: str, record: Sequence[Any]) -> Event:
    """The event `to_record` kept, holding only valid text: what routing and rendering see."""
    kind, provider, created, text, body, envelope, data = record
    # the body is parsed exactly as the provider parsed it (json reads UTF-8, -16 and -32),
    # lone surrogates included: they become U+FFFD here, the body itself stays as it came
    full = as_text_json(json.loads(bytes(body)) if body is not None else json.loads(envelope))
    return Event(
        source=source,
        provider=provider,
        id=event_id,
        type=kind,
        data=as_text_json(json.loads(data)) if data is not None else (full.get("data") or {}),
        created=parse_time(created) if created else None,
        text=as_text(text) if text is not None else None,
        envelope=full,
    )


def as_stored(event: Event) -> Event:
    """The event as the stores hand it back to the router (valid text throughout): what
    `relay render` and `relay routes` show, so that they show what relay would post."""
    return from_record(event.source, event.id, to_record(event))


_MISSING = object()


def dig(obj: Any, path: str, default: Any = None) -> Any:
    """Follow a dotted path through mappings and lists; `default` if any step is missing.

    Untrusted data may have any shape: a step into a non-container, a missing key or an
    out-of-range index yields `default` instead of raising.
    """
    if type(obj) is dict and type(path) is str and path and "." not in path:
        return obj.get(path, default)  # one key of a JSON object: a template's usual step
    cur: Any = obj
    for part in path.split(".") if path else []:
        if isinstance(cur, Mapping):
            cur = cur.get(part, _MISSING)
        elif isinstance(cur, list) and part.lstrip("-").isdigit():
            idx = int(part)
            cur = cur[idx] if -len(cur) <= idx < len(cur) else _MISSING
        else:
            cur = _MISSING
        if cur is _MISSING:
            return default
    return cur


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 string, unix seconds or milliseconds -> aware UTC datetime; None if unreadable."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            seconds = value / 1000 if value > 1e11 else value
            return datetime.fromtimestamp(seconds, tz=UTC)
        if isinstance(value, str) and value:
            text = value.strip()
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            parsed = datetime.fromisoformat(text)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None
