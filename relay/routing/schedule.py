"""Quiet hours: whether a named time interval is active at a given moment. Pure.

An interval is a list of ranges in the spirit of Alertmanager's `time_intervals`: each range
has optional `weekdays` (`monday`, `monday:friday`), optional `times` (`start_time`/`end_time`,
HH:MM, end exclusive; a start after the end wraps past midnight) and a `location` (IANA time
zone, default UTC). A range is active when every field it sets matches; an interval is active
when any of its ranges is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from relay.config import TimeInterval

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _weekdays(items: Sequence[str]) -> set[int]:
    days: set[int] = set()
    for item in items:
        first, _, last = item.lower().partition(":")
        start, end = _DAYS.index(first), _DAYS.index(last or first)
        span = (end - start) % 7
        days.update((start + i) % 7 for i in range(span + 1))
    return days


def range_active(interval: TimeInterval, now: float) -> bool:
    local = datetime.fromtimestamp(now, ZoneInfo(interval.location))
    if interval.weekdays is not None and local.weekday() not in _weekdays(interval.weekdays):
        return False
    if interval.times is None:
        return True
    minute = local.hour * 60 + local.minute
    for span in interval.times:
        start, end = _minutes(span.start_time), _minutes(span.end_time)
        if start <= end and start <= minute < end:
            return True
        if start > end and (minute >= start or minute < end):
            return True
    return False


def active(
    intervals: Mapping[str, Sequence[TimeInterval]], names: Sequence[str], now: float
) -> str | None:
    """The first of `names` whose interval is active at `now`, or None."""
    for name in names:
        if any(range_active(r, now) for r in intervals.get(name, ())):
            return name
    return None
