"""The typed records history is read as: a filter, a page of events with its cursor, one
event in full, a dead letter, the overview's counts. Pure data; the JSON API and the console's
pages show them (`to_json` is their JSON form).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

from relay.event import Event

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What the events list (and the dead letters) may be filtered on; None: any."""

    source: str | None = None
    type: str | None = None  # a shell glob: `task.*`
    outcome: str | None = None
    destination: str | None = None
    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # epoch seconds, exclusive
    q: str | None = None  # an event id, or text found in the type or the event's own text


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Items newest first; `after`: the key to continue from (None: the last page)."""

    items: tuple[T, ...]
    after: int | None


def encode_cursor(key: int | None) -> str | None:
    """The opaque cursor a client passes back for the next page."""
    if key is None:
        return None
    return base64.urlsafe_b64encode(f"k{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The key in a cursor; ValueError for one relay did not make."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor relay gave") from None
    if not text.startswith("k") or not text[1:].isdigit():
        raise ValueError("not a cursor relay gave")
    return int(text[1:])


@dataclass(frozen=True, slots=True)
class EventSummary:
    id: int  # history's key of the event (its inbox `seq`), for /api/events/{id}
    source: str
    event_id: str
    type: str
    received_at: float
    routed_at: float
    outcome: str
    text: str | None
    destinations: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "destinations": list(self.destinations)}


@dataclass(frozen=True, slots=True)
class AttemptView:
    at: float
    status: str  # the message's status after it: sent, retrying, dead
    reason: str
    error: str | None  # the chat's error code or HTTP status, as the sender reported it
    took: float | None  # seconds the chat took to answer
    next_attempt_at: float | None


@dataclass(frozen=True, slots=True)
class MessageView:
    id: int
    outbox_id: int | None
    destination: str
    route: str
    template: str
    message: dict[str, Any]  # the rendered, chat-neutral message
    status: str
    conversation: dict[str, Any] | None
    digest: str | None
    created_at: float
    finished_at: float | None
    attempts: int
    last_reason: str | None
    last_error: str | None
    channel_id: str | None
    ts: str | None
    timeline: tuple[AttemptView, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class EventDetail:
    summary: EventSummary
    provider: str
    envelope: dict[str, Any]
    routing: dict[str, Any]
    messages: tuple[MessageView, ...]
    event: Event  # the event as routing and rendering see it (for a resend or a reroute)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int  # the outbox id: what replay and drop take
    destination: str
    reason: str | None
    error: str | None
    attempts: int
    died_at: float | None
    event: EventSummary

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "event": self.event.to_json()}


@dataclass(frozen=True, slots=True)
class Tally:
    key: str
    sub: str | None
    count: int


@dataclass(frozen=True, slots=True)
class Window:
    """One period of the overview (the last 24 h, the last 7 d)."""

    since: float
    by_source: tuple[Tally, ...]  # key: source, sub: outcome
    per_hour: tuple[tuple[float, int], ...]  # (the hour's start, events received)
    latency_p50: float | None  # seconds from acceptance to delivery
    latency_p95: float | None
    busiest_types: tuple[Tally, ...]  # key: source, sub: type
    busiest_destinations: tuple[Tally, ...]
    failing_types: tuple[Tally, ...]
    failing_destinations: tuple[Tally, ...]


def percentile(ordered: list[float], share: float) -> float | None:
    """The nearest-rank percentile of sorted values (None for none)."""
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return ordered[rank]
