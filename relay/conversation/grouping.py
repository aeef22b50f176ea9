"""When a digest group flushes: Alertmanager's timing as pure functions of time. Pure.

A group that was quiet flushes `wait` after its first item; once it has flushed, the next
digest waits `interval` after the last one; a group holding `max_items` flushes at once. Both
store backends apply these rules inside the transaction that adds an item or flushes a group.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.records import GroupSpec


@dataclass(frozen=True, slots=True)
class GroupTimes:
    """A group's schedule as stored: its next flush (None: nothing waits) and its last one."""

    flush_at: float | None
    last_flush_at: float | None


def flush_at_on_add(times: GroupTimes | None, spec: GroupSpec, waiting: int, now: float) -> float:
    """When the group flushes once an item joined it (`waiting` items, this one included)."""
    if waiting >= spec.max_items:
        return now
    if times is None:
        return now + spec.wait
    if times.flush_at is not None:
        return times.flush_at
    last = times.last_flush_at
    if last is not None and now < last + spec.interval:
        return last + spec.interval
    return now + spec.wait


def flush_at_after_flush(waiting: int, interval: float, now: float) -> float | None:
    """When the group flushes next after a digest, with `waiting` items that arrived since."""
    return now + interval if waiting > 0 else None
