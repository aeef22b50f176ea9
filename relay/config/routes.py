"""The `routes:` of the config: what a rule matches, where it sends, and how its messages join
conversations (threads, repeats, digests) and quiet hours (`time_intervals`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from relay.config.values import (
    MENTION,
    MENTION_FORMS,
    Seconds,
    Strict,
    check_keys,
    invalid,
    not_a,
    seconds,
    str_list,
)

# ---------------------------------------------------------------- routes

_OPERATORS = ("equals", "not_equals", "one_of", "matches", "exists", "gt", "gte", "lt", "lte")


class Condition(Strict):
    """One test on a dotted path into the event's `data`; exactly one operator."""

    path: Annotated[str, Field(min_length=1)]
    equals: Any = None
    not_equals: Any = None
    one_of: list[Any] | None = None
    matches: str | None = None
    exists: bool | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [op for op in _OPERATORS if op in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(
                f"needs exactly one of {', '.join(_OPERATORS)} (got {', '.join(given) or 'none'})"
            )
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as exc:  # its message may quote part of the pattern
                raise invalid(
                    self.matches,
                    f"matches: not a valid regex (error at position {exc.pos})",
                    f"matches: '{{value}}' is not a valid regex: {exc}",
                ) from None
        return self

    @property
    def operator(self) -> str:
        return next(op for op in _OPERATORS if op in self.model_fields_set)


class Match(Strict):
    source: list[str] | None = None
    type: list[str] | None = None
    when: list[Condition] = []

    _lists = field_validator("source", "type", mode="before")(str_list)


# ---------------------------------------------------------------- conversations


class ThreadConfig(Strict):
    """Events with the same key read as one Slack thread; the first one posts the parent."""

    key: str = "auto"
    update: list[str] | None = None  # types (globs) that update the parent instead of replying
    broadcast: list[str] | None = None  # types (globs) whose replies also go to the channel
    ttl: Seconds = 7 * 86400.0

    _lists = field_validator("update", "broadcast", mode="before")(str_list)
    _ttl = field_validator("ttl", mode="before")(seconds)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        return check_keys([value])[0]


class RepeatConfig(Strict):
    """The same fingerprint within `interval` updates one message's counter instead of posting."""

    key: list[str] = ["type"]
    interval: Seconds = 3600.0

    _key_list = field_validator("key", mode="before")(str_list)
    _interval = field_validator("interval", mode="before")(seconds)
    _keys = field_validator("key")(check_keys)


class GroupConfig(Strict):
    """Alertmanager-style grouping: events of one group within a window become one digest."""

    by: list[str] = ["type"]
    wait: Seconds = 30.0
    interval: Seconds = 300.0
    max: Annotated[int, Field(ge=2)] = 100
    show: Annotated[int, Field(ge=1, le=40)] = 10

    _by_list = field_validator("by", mode="before")(str_list)
    _durations = field_validator("wait", "interval", mode="before")(seconds)
    _keys = field_validator("by")(check_keys)


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


class TimeRange(Strict):
    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        found = _CLOCK.match(value)
        if not found or (found.group(1) == "24" and found.group(2) != "00"):
            raise not_a(value, "a time of day (expected HH:MM, 00:00 to 24:00)")
        return value


class TimeInterval(Strict):
    """When an interval is active: weekdays (`monday:friday`), times of day, a time zone."""

    weekdays: list[str] | None = None
    times: list[TimeRange] | None = None
    location: str = "UTC"

    _weekdays = field_validator("weekdays", mode="before")(str_list)

    @field_validator("weekdays")
    @classmethod
    def _days(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            for day in item.lower().split(":"):
                if day not in _WEEKDAYS:
                    raise not_a(item, "a weekday or range like monday:friday")
        return value

    @field_validator("location")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise not_a(value, "a known time zone (e.g. Europe/Paris)") from None
        return value


def check_mentions(value: list[str]) -> list[str]:
    for item in value:
        if not MENTION.match(item):
            raise not_a(item, f"a mention (expected {MENTION_FORMS})")
    return value


class Route(Strict):
    name: str | None = None
    match: Match = Match()
    to: list[str] = []
    drop: bool = False
    template: str | None = None
    mention: list[str] = []
    continue_: bool = Field(False, alias="continue")
    thread: ThreadConfig | None = None
    repeat: RepeatConfig | None = None
    group: GroupConfig | None = None
    mute_during: list[str] = []
    mentions_off_during: list[str] = []
    # Slack buttons on this route's messages (relay.interactions): `mute` (Mute 1h), `ack`
    # (I'm on it)
    buttons: list[Literal["mute", "ack"]] = []

    _intervals = field_validator("mute_during", "mentions_off_during", mode="before")(str_list)

    @field_validator("thread", mode="before")
    @classmethod
    def _thread_shorthand(cls, value: Any) -> Any:
        if value is True or value == "auto":
            return {}
        if isinstance(value, str):
            return {"key": value}
        return value

    _mention = field_validator("mention", mode="before")(str_list)
    _buttons = field_validator("buttons", mode="before")(str_list)

    _mentions = field_validator("mention")(check_mentions)

    @field_validator("buttons")
    @classmethod
    def _unique_buttons(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _to_or_drop(self) -> Route:
        if self.drop and self.to:
            raise ValueError("a route with `drop: true` cannot also have `to`")
        if not self.drop and not self.to:
            raise ValueError("needs `to: [destination, ...]` or `drop: true`")
        if self.group is not None and (self.thread is not None or self.repeat is not None):
            raise ValueError("a route with `group` posts digests: it cannot also use thread/repeat")
        if self.group is not None and self.buttons:
            raise ValueError("a route with `group` posts digests: it cannot also have `buttons`")
        return self


class DefaultRoute(Strict):
    to: list[str] = []
    template: str | None = None
    mention: list[str] = []

    _mention = field_validator("mention", mode="before")(str_list)
    _mentions = field_validator("mention")(check_mentions)
