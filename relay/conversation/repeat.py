"""Repeat suppression: the counter a repeated message carries when it is updated. Pure.

When the same fingerprint comes back within a route's `repeat.interval`, the worker updates the
first message instead of posting again; the newest occurrence's message then carries "Seen N
times · first … · last …": a card as its `repeat` (each chat writes it its own way), Block Kit
as a context block of its own.
"""

from __future__ import annotations

from dataclasses import replace

from relay.messages import Card, Message, Repeat
from relay.render.formats.slack import counted


def with_counter(message: Message, count: int, first_at: float, last_at: float) -> Message:
    """The newest occurrence's message, carrying the counter of a repeated message."""
    if isinstance(message, Card):
        return replace(message, repeat=Repeat(count, first_at, last_at))
    return counted(message, count, first_at, last_at)
