"""What a silence is (`Silence`), the request that creates one (`SilenceRequest`, validated as
strictly as the config), and the `key=value` matcher form the CLI and the API accept.

A silence's matchers are a route's `match:` (`relay.config.Match`: source, type globs, `when`
conditions on the event's `data`), checked by the same validation and compiled by the same code
(`relay.routing.router.Matcher`); a silence may also name one destination, and one message key
(a thread or repeat key, `relay.records.Step`: what a Slack "Mute" button scopes a silence to).
It holds back the messages of the events it matches from `starts_at` until `ends_at`. Nothing
here does I/O.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator

from relay.config import Match
from relay.config.values import Seconds, Strict, seconds

MAX_COMMENT = 1000


class SilenceError(ValueError):
    """A silence request that cannot be honoured; `field` names what is wrong."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class SilenceState(StrEnum):
    PENDING = "pending"  # starts later
    ACTIVE = "active"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    match: Match
    destination: str | None
    key: str | None  # only messages joining this thread or repeat key
    starts_at: float
    ends_at: float
    comment: str
    created_by: str
    created_at: float

    def state(self, at: float) -> SilenceState:
        if at >= self.ends_at:
            return SilenceState.EXPIRED
        return SilenceState.ACTIVE if at >= self.starts_at else SilenceState.PENDING

    def expired_at(self, at: float) -> Silence:
        """This silence ended at `at` (unchanged if it had ended already)."""
        if at >= self.ends_at:
            return self
        return replace(self, starts_at=min(self.starts_at, at), ends_at=at)

    def matchers_json(self) -> str:
        # the fields as given: a condition's operator is the field it sets (even `equals: null`)
        return json.dumps(self.match.model_dump(exclude_unset=True))

    def to_json(self, at: float) -> dict[str, Any]:
        """The silence as the API and `relay silence list --json` show it."""
        return {
            "id": self.id,
            "match": self.match.model_dump(exclude_unset=True),
            "destination": self.destination,
            "key": self.key,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "state": self.state(at).value,
        }


def new_id() -> str:
    return "sil_" + uuid.uuid4().hex[:16]


class SilenceRequest(Strict):
    """A silence to create: matchers (`match`, or `matchers` in `key=value` form), optionally a
    destination, when it starts (default: now) and when it ends (`ends_at`, or `duration`)."""

    match: Match = Match()
    matchers: tuple[str, ...] = ()
    destination: str | None = None
    key: Annotated[str, Field(min_length=1, max_length=400)] | None = None
    starts_at: Annotated[float, Field(allow_inf_nan=False)] | None = None
    ends_at: Annotated[float, Field(allow_inf_nan=False)] | None = None
    duration: Seconds | None = None
    comment: Annotated[str, Field(max_length=MAX_COMMENT)] = ""
    created_by: Annotated[str, Field(max_length=200)] = ""

    _duration = field_validator("duration", mode="before")(seconds)


def parse_request(body: Any) -> SilenceRequest:
    """A request from JSON (or the CLI's arguments); a `SilenceError` naming the field if bad."""
    try:
        return SilenceRequest.model_validate(body)
    except ValidationError as exc:
        raise _problem(exc, ()) from None


def _problem(exc: ValidationError, prefix: tuple[str, ...]) -> SilenceError:
    """The first problem pydantic found, as `match.when[0].matches: <what is wrong>`."""
    err = exc.errors()[0]
    where = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in (*prefix, *err["loc"])
    ).lstrip(".")
    ctx = err.get("ctx") or {}
    message = str(ctx.get("detailed", err["msg"])).replace("{value}", str(ctx.get("value")))
    return SilenceError(where or "silence", message.removeprefix("Value error, "))


def build(
    request: SilenceRequest,
    now: float,
    *,
    destinations: Sequence[str] | None = None,
    id: str | None = None,
) -> Silence:
    """The silence a request asks for, checked: at least one matcher, a known destination (when
    the configured ones are given), an end after its start and in the future."""
    match = request.match
    if request.matchers:
        if match != Match():
            raise SilenceError("matchers", "give either `match` or `matchers`, not both")
        match = parse_matchers(request.matchers)
    if match == Match() and request.destination is None and request.key is None:
        raise SilenceError(
            "match",
            "a silence needs at least one matcher (source, type, data.PATH, destination or key)",
        )
    if (
        request.destination is not None
        and destinations is not None
        and request.destination not in destinations
    ):
        known = ", ".join(sorted(destinations)) or "none"
        raise SilenceError(
            "destination", f"unknown destination '{request.destination}' (configured: {known})"
        )
    starts = now if request.starts_at is None else request.starts_at
    if (request.ends_at is None) == (request.duration is None):
        raise SilenceError(
            "ends_at", "give exactly one of `ends_at` or `duration` (`--until`/`--for`)"
        )
    if request.duration is not None:
        if request.duration <= 0:
            raise SilenceError("duration", "must be longer than 0s")
        ends = starts + request.duration
    else:
        assert request.ends_at is not None
        ends = request.ends_at
        if ends <= starts:
            raise SilenceError("ends_at", "must be after starts_at")
    if ends <= now:
        raise SilenceError("ends_at", "is in the past: the silence would never hold anything")
    return Silence(
        id=id or new_id(),
        match=match,
        destination=request.destination,
        key=request.key,
        starts_at=starts,
        ends_at=ends,
        comment=request.comment,
        created_by=request.created_by,
        created_at=now,
    )


def _scalar(text: str) -> list[Any]:
    """What `data.x=3` may mean: the text, and the number or boolean it spells, if any."""
    found: list[Any] = [text]
    try:
        value = json.loads(text)
    except ValueError:
        return found
    if isinstance(value, bool | int | float) and not isinstance(value, str):
        found.append(value)
    return found


def parse_matchers(tokens: Sequence[str]) -> Match:
    """`source=anchor`, `type=task.*` (globs; a comma lists several), `data.PATH=VALUE`,
    `data.PATH!=VALUE`, `data.PATH=~REGEX`: the `match:` of a route, validated as the config is."""
    sources: list[str] = []
    types: list[str] = []
    when: list[dict[str, Any]] = []
    for number, token in enumerate(tokens):
        field = f"matchers[{number}]"
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise SilenceError(field, f"'{token}' is not KEY=VALUE (source=, type=, data.PATH=)")
        if key == "source":
            sources += [v for v in value.split(",") if v]
        elif key == "type":
            types += [v for v in value.split(",") if v]
        elif key.startswith("data.") and len(key) > 5:
            path = key[5:]
            if path.endswith("!"):
                when.append({"path": path[:-1], "not_equals": value})
            elif value.startswith("~"):
                when.append({"path": path, "matches": value[1:]})
            else:
                options = _scalar(value)
                when.append(
                    {"path": path, "equals": value} if len(options) == 1 else
                    {"path": path, "one_of": options}
                )  # fmt: skip
        else:
            raise SilenceError(
                field, f"unknown matcher '{key}' (expected source, type or data.PATH)"
            )
    raw: dict[str, Any] = {"when": when}
    if sources:
        raw["source"] = sources
    if types:
        raw["type"] = types
    try:
        return Match.model_validate(raw)
    except ValidationError as exc:
        raise _problem(exc, ("match",)) from None
