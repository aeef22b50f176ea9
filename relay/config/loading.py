"""Loading the YAML configuration: `${VAR}` interpolation, validation, errors that name the path.

`load_config(path)` is the only entry point. Every problem is reported as
`<yaml.path>: <what is wrong>`, all problems at once, in a `ConfigError`, in two forms (see
`relay.errors.Problem`): the public one names the path and what was expected, never the value
(`routes[3].to[0]: unknown destination (known: alerts, events)`), the detailed one, for the
operator's terminal, shows the value too (`... unknown destination 'opps' ...`), except that a
value from an environment variable shows as the `${VAR}` it was written as. A validator that
quotes a value therefore raises `invalid` (or `not_a`), which keeps the value apart from the
message.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    SecretStr,
    ValidationError,
)

from relay.config.model import Config, LoadedConfig
from relay.config.values import INVALID, NAME
from relay.errors import ConfigError, Problem

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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


TAGS = (
    "anchor",
    "deck",
    "tabstack",
    "generic",
    "slack",
    "webhook",
    "console",
    "teams",
    "google_chat",
    "discord",
    "mattermost",
)
NAMED = ("sources", "destinations")  # mappings whose keys are checked names


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
            elif part in TAGS and out.startswith(NAMED) and out.count(".") == 1:
                continue  # the discriminator's tag pydantic adds to the location
            elif public and depth == 1 and out in NAMED and not NAME.match(part):
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
    if kind == INVALID:
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
