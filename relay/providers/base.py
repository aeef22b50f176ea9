"""The provider protocol (`verify`, `parse`) and the small helpers every provider shares.

A provider is a pure adapter: bytes and headers in, `Event`s out. It never reads a clock (the
caller passes `now`), never does I/O, and only ever raises `Unauthorized` (from `verify`) or
`MalformedRequest` (from `parse`), so the HTTP edge can map every refusal to one status code.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from relay.errors import MalformedRequest, Unauthorized
from relay.event import Event, is_text, parse_time

Headers = Mapping[str, str]

# a SHA-256 digest in hex, as Anchor and generic senders put it in a header
HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


class Provider(Protocol):
    """What the HTTP edge needs from a platform adapter."""

    kind: ClassVar[str]
    source: str

    @classmethod
    def from_config(cls, name: str, source: Any, max_json_depth: int) -> Provider:
        """The provider of the source configured as `name` (its config model of this kind)."""
        ...

    def verify(self, headers: Headers, body: bytes, now: float) -> None:
        """Raise `Unauthorized` unless the request is authentic and fresh."""

    def parse(self, headers: Headers, body: bytes) -> list[Event]:
        """The events in a verified body; `MalformedRequest` when it cannot be read."""
        ...


class LowerCased(dict[str, str]):
    """Headers whose names are lower case already, as an ASGI server hands them over."""


def lower_keys(headers: Headers) -> dict[str, str]:
    """Header names are case-insensitive; callers may hand us any casing."""
    if isinstance(headers, LowerCased):
        return headers
    return {str(k).lower(): v for k, v in headers.items()}


def to_bytes(text: str) -> bytes:
    """Encode header text for a constant-time compare without ever raising.

    Header values come from the network and, in tests, from arbitrary strings (lone surrogates
    included); `surrogatepass` keeps the mapping injective so no two values compare equal.
    """
    return text.encode("utf-8", "surrogatepass")


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(to_bytes(given), to_bytes(expected))


def hmac_hex(key: bytes, message: bytes) -> str:
    return hmac.digest(key, message, "sha256").hex()  # OpenSSL's one-shot: no HMAC object


def bearer_ok(headers: Mapping[str, str], token: str | None) -> bool:
    """`Authorization: Bearer <token>` (scheme case-insensitive), compared in constant time."""
    if not token:
        return False
    scheme, _, given = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return same_secret(given.strip(), token)


def check_timestamp(raw: str, now: float, tolerance_s: float, what: str) -> int:
    """Unix seconds from a header; `Unauthorized` if unreadable, too old or too far ahead.

    Future timestamps are refused as well as stale ones: a signature minted for later would
    otherwise stay replayable for longer than the tolerance promises.
    """
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 15:
        raise Unauthorized(f"{what} must be unix seconds, got '{raw[:40]}'")
    ts = int(text)
    age = now - ts
    # written as `not <=` so that a NaN clock refuses instead of accepting everything
    if not age <= tolerance_s:
        raise Unauthorized(f"{what} is {age:.0f} s old (tolerance {tolerance_s:g} s)")
    if not -age <= tolerance_s:
        raise Unauthorized(f"{what} is {-age:.0f} s in the future (tolerance {tolerance_s:g} s)")
    return ts


def json_object(body: bytes, max_depth: int | None = None) -> dict[str, Any]:
    """The body as a JSON object nested at most `max_depth` levels; `MalformedRequest` else.

    No pre-scan of the text is needed to stay stack-safe: json's C decoder stops at Python's
    recursion limit on its own (`RecursionError`, a 400 here), so nothing nested deeper than
    about a thousand levels is ever built, and the walk that enforces the limit is iterative.
    """
    limit = MAX_JSON_DEPTH if max_depth is None else max_depth
    try:
        obj = json.loads(body)
    except RecursionError:
        raise MalformedRequest("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise MalformedRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedRequest(f"body must be a JSON object, got {type(obj).__name__}")
    # every level opens a `{` or `[` (a 0x7B or 0x5B byte in any encoding json reads): a body
    # with no more of them than the limit, the usual case, counted in C, needs no walk
    opened = body.count(b"{") + body.count(b"[")
    if opened > limit and depth(obj, limit) > limit:
        raise MalformedRequest(f"body is nested deeper than {limit} levels")
    return obj


MAX_JSON_DEPTH = 64  # no provider nests beyond ~6; deeper is an attack on whatever walks it


def depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (iterative: stack-safe); the
    walk stops as soon as it is past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def envelope_event(
    provider: Provider, obj: dict[str, Any], body: bytes, *, created: str, text: str | None = None
) -> Event:
    """The event of a webhook whose body is the envelope `{id, type, data, <created>, ...}`
    (Anchor, Deck): the keys of its creation time and of its one-line text differ."""
    return Event(
        source=provider.source,
        provider=provider.kind,
        id=required_str(obj, "id"),
        type=required_str(obj, "type"),
        data=data_object(obj),
        created=parse_time(obj.get(created)),
        text=optional_str(obj.get(text)) if text is not None else None,
        envelope=obj,
        body=body,
    )


def required_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedRequest(f"field `{key}` must be a non-empty string, got {_show(value)}")
    return identity_text(f"field `{key}`", value)


def identity_text(what: str, value: str) -> str:
    """An event's id or type, refused unless it is valid text (`relay.event.is_text`): it is a
    key of the stores and a log field, so it cannot be shown with a replacement character the
    way free text is (two different ids would become one)."""
    if not is_text(value):
        raise MalformedRequest(
            f"{what} must be valid text, without a lone surrogate (\\ud800-\\udfff)"
            f" or NUL (\\u0000), got {_show(value)}"
        )
    return value


def data_object(obj: Mapping[str, Any], key: str = "data") -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedRequest(f"field `{key}` must be an object, got {type(value).__name__}")
    return value


def optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict | list):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
