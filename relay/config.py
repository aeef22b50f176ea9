"""The YAML configuration: `${VAR}` interpolation, strict frozen models, errors that name the path.

`load_config(path)` is the only entry point. Every problem is reported as
`<yaml.path>: <what is wrong>`, all problems at once, in a `ConfigError`, in two forms (see
`relay.errors.Problem`): the public one names the path and what was expected, never the value
(`routes[3].to[0]: unknown destination (known: alerts, events)`), the detailed one, for the
operator's terminal, shows the value too (`... unknown destination 'opps' ...`), except that a
value from an environment variable shows as the `${VAR}` it was written as. A validator that
quotes a value therefore raises `_invalid` (or `_not`), which keeps the value apart from the
message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from relay.errors import ConfigError, Problem

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MENTION = re.compile(r"^(@here|@channel|@everyone|[UW][A-Z0-9]{2,}|S[A-Z0-9]{2,})$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_INVALID = "relay_invalid"  # the pydantic error type of `_invalid`


def _invalid(value: Any, public: str, detailed: str) -> PydanticCustomError:
    """A validation error whose value travels apart from its message: `public` says what was
    expected without the value; `detailed` shows it where it says `{value}`."""
    return PydanticCustomError(_INVALID, public, {"value": value, "detailed": detailed})


def _not(value: Any, what: str) -> PydanticCustomError:
    """`'<value>' is not <what>` on the operator's terminal, `not <what>` everywhere else."""
    return _invalid(value, f"not {what}", f"'{{value}}' is not {what}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _seconds(value: Any) -> Any:
    """Accept `90`, `90s`, `5m`, `24h`, `7d` for durations; pydantic checks the result."""
    if isinstance(value, str):
        found = _DURATION.match(value.strip())
        if not found:
            raise _not(value, "a duration (expected e.g. 30s, 5m, 24h)")
        return float(found.group(1)) * _DURATION_UNITS[found.group(2)]
    return value


def _secret_list(value: Any) -> Any:
    """A secrets list may be one string; empty entries (unset `${VAR:-}`) are dropped."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [v for v in value if not (isinstance(v, str) and not v.strip())]
    return value


Seconds = Annotated[float, Field(gt=0)]


# ---------------------------------------------------------------- sources


class AnchorSource(_Strict):
    provider: Literal["anchor"]
    secrets: list[SecretStr] = []
    tolerance: Seconds = 120.0
    key_encoding: Literal["utf8", "hex", "both"] = "both"

    _secrets = field_validator("secrets", mode="before")(_secret_list)
    _tolerance = field_validator("tolerance", mode="before")(_seconds)

    @model_validator(mode="after")
    def _hex_secrets(self) -> AnchorSource:
        if self.key_encoding == "hex":
            for secret in self.secrets:
                if not _HEX.fullmatch(secret.get_secret_value()):
                    raise ValueError("key_encoding 'hex' needs secrets of hex digits")
        return self


class DeckSource(_Strict):
    provider: Literal["deck"]
    secrets: list[SecretStr] = []
    tolerance: Seconds = 300.0

    _secrets = field_validator("secrets", mode="before")(_secret_list)
    _tolerance = field_validator("tolerance", mode="before")(_seconds)

    @field_validator("secrets")
    @classmethod
    def _whsec(cls, value: list[SecretStr]) -> list[SecretStr]:
        for secret in value:
            text = secret.get_secret_value()
            if not text.startswith("whsec_"):
                raise ValueError("a Deck secret starts with 'whsec_'")
            try:  # decoded as the standardwebhooks package does
                key = base64.b64decode(text.removeprefix("whsec_") + "==")
            except (binascii.Error, ValueError):
                key = b""
            if not key:
                raise ValueError("a Deck secret is 'whsec_' followed by base64")
        return value


class TabstackSource(_Strict):
    provider: Literal["tabstack"]
    token: SecretStr | None = None
    api_key: SecretStr | None = None
    base_url: str = "https://api.tabstack.ai/v1"
    max_stream_seconds: Seconds = 3600.0
    max_stream_bytes: Annotated[int, Field(gt=0)] = 64 * 1024 * 1024
    progress_interval: Seconds | None = 10.0  # live `run.progress` events; null turns them off

    _max_stream_seconds = field_validator("max_stream_seconds", "progress_interval", mode="before")(
        _seconds
    )

    @field_validator("token", "api_key", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


class GenericSource(_Strict):
    provider: Literal["generic"]
    id_path: str = "id"
    type_path: str = "type"
    data_path: str | None = None
    created_path: str | None = None
    text_path: str | None = None
    secrets: list[SecretStr] = []
    signature_header: str = "X-Signature"
    signature_prefix: str = "sha256="
    token: SecretStr | None = None
    timestamp_header: str | None = None
    tolerance: Seconds = 300.0

    _secrets = field_validator("secrets", mode="before")(_secret_list)
    _tolerance = field_validator("tolerance", mode="before")(_seconds)
    _token = field_validator("token", mode="before")(TabstackSource._blank_is_none.__func__)  # type: ignore[attr-defined]


Source = Annotated[
    AnchorSource | DeckSource | TabstackSource | GenericSource, Field(discriminator="provider")
]


# ---------------------------------------------------------------- slack and destinations


class SlackConfig(_Strict):
    token: SecretStr | None = None
    api_url: str = "https://slack.com/api/"
    timeout: Seconds = 10.0

    _timeout = field_validator("timeout", mode="before")(_seconds)
    _token = field_validator("token", mode="before")(TabstackSource._blank_is_none.__func__)  # type: ignore[attr-defined]

    @field_validator("api_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise _not(value, "an http(s) URL")
        return value if value.endswith("/") else value + "/"


class SlackChannelDestination(_Strict):
    type: Literal["slack"]
    channel: Annotated[str, Field(min_length=1)]


class WebhookDestination(_Strict):
    type: Literal["webhook"]
    url: SecretStr | None = None

    @field_validator("url", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("url")
    @classmethod
    def _https(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(r"^https?://\S+$", value.get_secret_value()):
            raise ValueError("not an http(s) URL")
        return value


class ConsoleDestination(_Strict):
    type: Literal["console"]


Destination = Annotated[
    SlackChannelDestination | WebhookDestination | ConsoleDestination,
    Field(discriminator="type"),
]


# ---------------------------------------------------------------- routes

_OPERATORS = ("equals", "not_equals", "one_of", "matches", "exists", "gt", "gte", "lt", "lte")


class Condition(_Strict):
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
                raise _invalid(
                    self.matches,
                    f"matches: not a valid regex (error at position {exc.pos})",
                    f"matches: '{{value}}' is not a valid regex: {exc}",
                ) from None
        return self

    @property
    def operator(self) -> str:
        return next(op for op in _OPERATORS if op in self.model_fields_set)


def _str_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Match(_Strict):
    source: list[str] | None = None
    type: list[str] | None = None
    when: list[Condition] = []

    _lists = field_validator("source", "type", mode="before")(_str_list)


# ---------------------------------------------------------------- conversations

_KEY = re.compile(r"^(auto|[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*|.*\{\{.*\}\}.*)$")


def _check_keys(values: list[str]) -> list[str]:
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    for value in values:
        if not _KEY.match(value):
            raise _not(
                value,
                "a key (expected `auto`, a dotted path such as data.session_id, or a Jinja "
                "expression such as '{{ data.task_id }}')",
            )
        if "{{" in value:
            try:
                ImmutableSandboxedEnvironment().parse(value)
            except TemplateSyntaxError as exc:  # its message may quote part of the value
                raise _invalid(
                    value,
                    "not a valid Jinja expression",
                    f"'{{value}}' is not a valid Jinja expression: {exc.message}",
                ) from None
    return values


class ThreadConfig(_Strict):
    """Events with the same key read as one Slack thread; the first one posts the parent."""

    key: str = "auto"
    update: list[str] | None = None  # types (globs) that update the parent instead of replying
    broadcast: list[str] | None = None  # types (globs) whose replies also go to the channel
    ttl: Seconds = 7 * 86400.0

    _lists = field_validator("update", "broadcast", mode="before")(_str_list)
    _ttl = field_validator("ttl", mode="before")(_seconds)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        return _check_keys([value])[0]


class RepeatConfig(_Strict):
    """The same fingerprint within `interval` updates one message's counter instead of posting."""

    key: list[str] = ["type"]
    interval: Seconds = 3600.0

    _key_list = field_validator("key", mode="before")(_str_list)
    _interval = field_validator("interval", mode="before")(_seconds)
    _keys = field_validator("key")(_check_keys)


class GroupConfig(_Strict):
    """Alertmanager-style grouping: events of one group within a window become one digest."""

    by: list[str] = ["type"]
    wait: Seconds = 30.0
    interval: Seconds = 300.0
    max: Annotated[int, Field(ge=2)] = 100
    show: Annotated[int, Field(ge=1, le=40)] = 10

    _by_list = field_validator("by", mode="before")(_str_list)
    _durations = field_validator("wait", "interval", mode="before")(_seconds)
    _keys = field_validator("by")(_check_keys)


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


class TimeRange(_Strict):
    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        found = _CLOCK.match(value)
        if not found or (found.group(1) == "24" and found.group(2) != "00"):
            raise _not(value, "a time of day (expected HH:MM, 00:00 to 24:00)")
        return value


class TimeInterval(_Strict):
    """When an interval is active: weekdays (`monday:friday`), times of day, a time zone."""

    weekdays: list[str] | None = None
    times: list[TimeRange] | None = None
    location: str = "UTC"

    _weekdays = field_validator("weekdays", mode="before")(_str_list)

    @field_validator("weekdays")
    @classmethod
    def _days(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            for day in item.lower().split(":"):
                if day not in _WEEKDAYS:
                    raise _not(item, "a weekday or range like monday:friday")
        return value

    @field_validator("location")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise _not(value, "a known time zone (e.g. Europe/Paris)") from None
        return value


class Route(_Strict):
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

    _intervals = field_validator("mute_during", "mentions_off_during", mode="before")(_str_list)

    @field_validator("thread", mode="before")
    @classmethod
    def _thread_shorthand(cls, value: Any) -> Any:
        if value is True or value == "auto":
            return {}
        if isinstance(value, str):
            return {"key": value}
        return value

    _mention = field_validator("mention", mode="before")(_str_list)

    @field_validator("mention")
    @classmethod
    def _mentions(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _MENTION.match(item):
                raise _not(
                    item,
                    "a mention (expected @here, @channel, @everyone, a user ID like U0123ABCD "
                    "or a user group ID like S0123ABCD)",
                )
        return value

    @model_validator(mode="after")
    def _to_or_drop(self) -> Route:
        if self.drop and self.to:
            raise ValueError("a route with `drop: true` cannot also have `to`")
        if not self.drop and not self.to:
            raise ValueError("needs `to: [destination, ...]` or `drop: true`")
        if self.group is not None and (self.thread is not None or self.repeat is not None):
            raise ValueError("a route with `group` posts digests: it cannot also use thread/repeat")
        return self


class DefaultRoute(_Strict):
    to: list[str] = []
    template: str | None = None
    mention: list[str] = []

    _mention = field_validator("mention", mode="before")(_str_list)
    _mentions = field_validator("mention")(Route._mentions.__func__)  # type: ignore[attr-defined]


class ServerConfig(_Strict):
    max_body_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    # JSON nested deeper is refused (400); Python's json decoder stops near 1000 by itself
    max_json_depth: Annotated[int, Field(gt=0, le=512)] = 64
    # poll the config file and templates folder this often and reload on a change; off if null
    watch: Seconds | None = None

    _watch = field_validator("watch", mode="before")(_seconds)


class StoreConfig(_Strict):
    dedup_ttl: Seconds = 86400.0
    max_age: Seconds = 86400.0
    # a claimed delivery is retaken by any replica after this, even from a live one (the
    # backstop: a dead replica's claims are retaken once its heartbeat is stale, see
    # relay.delivery.heartbeat)
    lease: Seconds = 60.0

    _durations = field_validator("dedup_ttl", "max_age", "lease", mode="before")(_seconds)


class PacingConfig(_Strict):
    """Messages per second per channel or webhook URL, and the burst allowed on top."""

    rate: Annotated[float, Field(gt=0)] = 1.0
    burst: Annotated[float, Field(ge=1)] = 3.0


class Config(_Strict):
    sources: dict[str, Source]
    slack: SlackConfig = SlackConfig()
    destinations: dict[str, Destination]
    routes: list[Route] = []
    default: DefaultRoute = DefaultRoute()
    templates: str | None = None
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    pacing: PacingConfig = PacingConfig()
    time_intervals: dict[str, list[TimeInterval]] = {}

    @field_validator("sources", "destinations")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for number, name in enumerate(value, 1):
            if not _NAME.match(name):  # perhaps a secret pasted one line too high
                raise _invalid(
                    name,
                    f"name #{number} must be lower-case letters, digits, - or _",
                    "name '{value}' must be lower-case letters, digits, - or _",
                )
        return value


# ---------------------------------------------------------------- loading


class LoadedConfig(BaseModel):
    """A validated config with where it came from; `templates_dir` resolved against the file."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    config: Config
    path: Path
    templates_dir: Path | None
    digest: str


def interpolate(
    value: Any, env: Mapping[str, str], path: str, errors: list[str], written: dict[str, str]
) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string; `$$` is a literal `$`.

    Every string an environment variable went into is recorded in `written` (its value -> the
    text as written), so that a problem quoting it shows `${VAR}`: secrets arrive this way."""
    if isinstance(value, str):
        from_env = False

        def sub(found: re.Match[str]) -> str:
            nonlocal from_env
            if found.group(0) == "$$":
                return "$"
            name, default = found.group(1), found.group(2)
            if name in env:
                from_env = True
                return env[name]
            if default is not None:
                return default
            errors.append(
                f"{path}: environment variable {name} is not set "
                f"(write ${{{name}:-}} to make it optional)"
            )
            return ""

        resolved = _VAR.sub(sub, value)
        if from_env:
            written[resolved] = value
        return resolved
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]", errors, written) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {
            k: interpolate(v, env, _join(path, str(k)), errors, written) for k, v in value.items()
        }
    return value


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


_TAGS = ("anchor", "deck", "tabstack", "generic", "slack", "webhook", "console")
_NAMED = ("sources", "destinations")  # mappings whose keys are checked names


class _Quoting:
    """How the problems of one config file show values: `shown` gives what the detailed form
    prints for a value; `where` a YAML path, in which the public form gives a mapping key that
    is not a valid name (a value in the wrong place, perhaps a secret) by its number, `#2`."""

    def __init__(self, raw: Mapping[str, Any], written: Mapping[str, str]) -> None:
        self.raw = raw
        self.written = written

    def shown(self, value: Any) -> Any:
        return self.written.get(value, value) if isinstance(value, str) else value

    def where(self, loc: tuple[int | str, ...], *, public: bool) -> str:
        out = ""
        for depth, part in enumerate(loc):
            if isinstance(part, int):
                out += f"[{part}]"
            elif part in _TAGS and out.startswith(_NAMED) and out.count(".") == 1:
                continue  # the discriminator's tag pydantic adds to the location
            elif public and depth == 1 and out in _NAMED and not _NAME.match(part):
                names = self.raw.get(out)
                keys = list(names) if isinstance(names, dict) else []
                out = _join(out, f"#{keys.index(part) + 1 if part in keys else '?'}")
            else:
                out = _join(out, str(part))
        return out or "<top>"


def _problem(err: Mapping[str, Any], quoting: _Quoting) -> Problem:
    """One pydantic error as a problem: its path, and its message with and without the value."""
    kind, msg = err["type"], str(err["msg"]).removeprefix("Value error, ")
    ctx = err.get("ctx", {})
    loc, suffix = err["loc"], ""
    public = detailed = msg
    if kind == _INVALID:
        shown = str(quoting.shown(ctx["value"]))
        detailed = str(ctx["detailed"]).replace("{value}", shown)
    elif kind == "extra_forbidden":
        public = detailed = "unknown key"
    elif kind == "missing":
        public = detailed = "required key is missing"
    elif kind == "union_tag_invalid":
        field = str(ctx.get("discriminator", "kind")).strip("'")
        suffix = "." + field
        expected = f"(expected {ctx.get('expected_tags')})"
        public = f"unknown {field} {expected}"
        detailed = f"unknown {field} '{quoting.shown(ctx.get('tag'))}' {expected}"
    elif kind == "union_tag_not_found":
        public = detailed = "needs a `provider`" if "provider" in msg else "needs a `type`"
    elif kind != "value_error":  # pydantic's own message, which never quotes the input
        got = err.get("input")
        hidden = isinstance(got, dict | list | SecretStr) or got is None
        if not hidden and "secret" not in str(loc).lower():
            detailed = f"{msg} (got {quoting.shown(got)!r})"
    return Problem(
        f"{quoting.where(loc, public=True)}{suffix}: {public}",
        f"{quoting.where(loc, public=False)}{suffix}: {detailed}",
    )


def _cross_references(config: Config, quoting: _Quoting) -> list[Problem]:
    problems: list[Problem] = []

    def unknown(where: str, what: str, name: str, known: str) -> None:
        problems.append(
            Problem(
                f"{where}: unknown {what} (known: {known})",
                f"{where}: unknown {what} '{quoting.shown(name)}' (known: {known})",
            )
        )

    destinations = ", ".join(sorted(config.destinations)) or "none defined"
    sources = set(config.sources)

    def check_to(path: str, names: list[str]) -> None:
        for i, name in enumerate(names):
            if name not in config.destinations:
                unknown(f"{path}.to[{i}]", "destination", name, destinations)

    for r, route in enumerate(config.routes):
        check_to(f"routes[{r}]", route.to)
        for s, src in enumerate(route.match.source or []):
            if src not in sources:
                unknown(f"routes[{r}].match.source[{s}]", "source", src, ", ".join(sorted(sources)))
    check_to("default", config.default.to)
    intervals = ", ".join(sorted(config.time_intervals)) or "none defined"
    for r, route in enumerate(config.routes):
        for field in ("mute_during", "mentions_off_during"):
            for i, name in enumerate(getattr(route, field)):
                if name not in config.time_intervals:
                    unknown(f"routes[{r}].{field}[{i}]", "time interval", name, intervals)
    if config.store.lease <= config.slack.timeout:
        why = (
            "a delivery still waiting for Slack would be taken over by another replica and "
            "posted twice"
        )
        problems.append(
            Problem(
                f"store.lease: must be longer than slack.timeout: {why}",
                f"store.lease: {config.store.lease:g}s must be longer than slack.timeout "
                f"({config.slack.timeout:g}s): {why}",
            )
        )
    return problems


def parse_config(text: str, path: Path, env: Mapping[str, str]) -> LoadedConfig:
    """Validate config text; raise ConfigError listing every problem with its YAML path."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        # PyYAML's message quotes the lines around the mistake
        raise ConfigError(
            [Problem(f"{path}: not valid YAML{at}", f"{path}: not valid YAML: {exc}")]
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping at the top level"])
    raw.setdefault(
        "slack",
        {"token": "${SLACK_BOT_TOKEN:-}", "api_url": "${SLACK_API_URL:-https://slack.com/api/}"},
    )
    errors: list[str] = []
    written: dict[str, str] = {}
    resolved = interpolate(raw, env, "", errors, written)
    if errors:
        raise ConfigError(errors)
    quoting = _Quoting(resolved, written)
    try:
        config = Config.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError([_problem(e, quoting) for e in exc.errors()]) from None
    problems = _cross_references(config, quoting)
    if problems:
        raise ConfigError(problems)
    templates_dir = None
    if config.templates:
        templates_dir = (path.parent / config.templates).resolve()
        if not templates_dir.is_dir():
            folder = quoting.shown(config.templates)
            raise ConfigError(
                [
                    Problem(
                        "templates: folder does not exist",
                        f"templates: folder '{folder}' does not exist",
                    )
                ]
            )
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return LoadedConfig(config=config, path=path, templates_dir=templates_dir, digest=digest)


def secret_values(value: Any) -> list[str]:
    """Every secret in a config (tokens, signing secrets, webhook URLs), for log scrubbing."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, SecretStr):
            found.append(item.get_secret_value())
        elif isinstance(item, BaseModel):
            stack.extend(getattr(item, name) for name in type(item).model_fields)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read config: {exc.strerror}"]) from None
    return parse_config(text, file, os.environ if env is None else env)
