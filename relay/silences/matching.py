"""Which silence holds back a message: the pure decision, on silences already read.

A silence matches a message when it is active at the event's acceptance time, its matchers
(compiled by the routing code, `relay.routing.router.Matcher`) match the event, and it names
no destination or the message's, and no message key or one the message joins (its thread or
repeat key). When several match (overlapping silences), the one that ends
last is named on the message: it is the one that explains why the message was held longest.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from relay.event import Event
from relay.routing.router import Matcher
from relay.silences.model import Silence


@dataclass(frozen=True, slots=True)
class Compiled:
    silence: Silence
    matcher: Matcher


class SilenceSet:
    """Silences compiled once per routing batch; `holding` is pure."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        # the longest-lasting first, so the first match is the one to name
        ordered = sorted(silences, key=lambda s: (-s.ends_at, s.id))
        self._compiled = tuple(Compiled(s, Matcher.compile(s.match)) for s in ordered)

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def holding(
        self, event: Event, destination: str, at: float, keys: Collection[str] = ()
    ) -> Silence | None:
        """The silence that holds back this event's message to `destination`, which joins the
        conversation `keys` (`Step.keys()`), if any."""
        for c in self._compiled:
            s = c.silence
            if not s.starts_at <= at < s.ends_at:
                continue
            if s.destination is not None and s.destination != destination:
                continue
            if s.key is not None and s.key not in keys:
                continue
            if c.matcher.explain(event) is None:
                return s
        return None


@dataclass(frozen=True, slots=True)
class Preview:
    """Whether a stored message would have been held: `conditions` lists the `when` tests that
    could not be checked (the outbox keeps an event's source and type, not its data)."""

    matched: bool
    unchecked: tuple[str, ...]


def preview(
    silence: Silence, source: str, type_: str, destination: str, keys: Collection[str] = ()
) -> Preview:
    """Would `silence` have matched a message already in the outbox (time aside)?"""
    if silence.destination is not None and silence.destination != destination:
        return Preview(False, ())
    if silence.key is not None and silence.key not in keys:
        return Preview(False, ())
    matcher = Matcher.compile(silence.match)
    envelope = Event(source=source, provider="", id="", type=type_, data={})
    bare = Matcher(matcher.sources, matcher.types, ())
    if bare.explain(envelope) is not None:
        return Preview(False, ())
    return Preview(True, tuple(text for _, text in matcher.conditions))
