"""The building blocks of relay's config models: strict frozen models, durations, secret lists,
keys, and validation errors that keep a value apart from their message.

A validator that quotes a value raises `invalid` (or `not_a`), so that the public form of the
problem (`relay.errors.Problem`) can name the path and what was expected without the value.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)
from pydantic_core import PydanticCustomError

# whom a route mentions: a broadcast every chat writes its own way, Slack's user and user group
# IDs as they are (or after `slack:`), or a name meant for one other chat
MENTION = re.compile(
    r"^(@here|@channel|@everyone"
    r"|(slack:)?[UW][A-Z0-9]{2,}|(slack:)?S[A-Z0-9]{2,}"
    r"|discord:(user|role):[0-9]{5,25}"
    r"|mattermost:[a-z0-9][a-z0-9._-]{0,63}"
    r"|google_chat:(users/[0-9]{1,30}|all)"
    r"|teams:[^\s|<>]{1,200}(\|[^<>|]{1,100})?)$"
)
MENTION_FORMS = (
    "@here, @channel, @everyone, a Slack user ID like U0123ABCD or user group ID like"
    " S0123ABCD, discord:user:ID, discord:role:ID, mattermost:USERNAME, google_chat:users/ID,"
    " google_chat:all or teams:USER@DOMAIN"
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
INVALID = "relay_invalid"  # the pydantic error type of `invalid`


def invalid(value: Any, public: str, detailed: str) -> PydanticCustomError:
    """A validation error whose value travels apart from its message: `public` says what was
    expected without the value; `detailed` shows it where it says `{value}`."""
    return PydanticCustomError(INVALID, public, {"value": value, "detailed": detailed})


def not_a(value: Any, what: str) -> PydanticCustomError:
    """`'<value>' is not <what>` on the operator's terminal, `not <what>` everywhere else."""
    return invalid(value, f"not {what}", f"'{{value}}' is not {what}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def seconds(value: Any) -> Any:
    """Accept `90`, `90s`, `5m`, `24h`, `7d` for durations; pydantic checks the result."""
    if isinstance(value, str):
        found = _DURATION.match(value.strip())
        if not found:
            raise not_a(value, "a duration (expected e.g. 30s, 5m, 24h)")
        return float(found.group(1)) * _DURATION_UNITS[found.group(2)]
    return value


def blank_is_none(value: Any) -> Any:
    """An optional value left empty (an unset `${VAR:-}`) is no value."""
    return None if isinstance(value, str) and not value.strip() else value


def secret_list(value: Any) -> Any:
    """A secrets list may be one string; empty entries (unset `${VAR:-}`) are dropped."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [v for v in value if not (isinstance(v, str) and not v.strip())]
    return value


Seconds = Annotated[float, Field(gt=0)]


def str_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


_KEY = re.compile(r"^(auto|[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*|.*\{\{.*\}\}.*)$")


def check_keys(values: list[str]) -> list[str]:
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    for value in values:
        if not _KEY.match(value):
            raise not_a(
                value,
                "a key (expected `auto`, a dotted path such as data.session_id, or a Jinja "
                "expression such as '{{ data.task_id }}')",
            )
        if "{{" in value:
            try:
                ImmutableSandboxedEnvironment().parse(value)
            except TemplateSyntaxError as exc:  # its message may quote part of the value
                raise invalid(
                    value,
                    "not a valid Jinja expression",
                    f"'{{value}}' is not a valid Jinja expression: {exc.message}",
                ) from None
    return values


class PacingConfig(Strict):
    """Messages per second per channel or webhook URL, and the burst allowed on top."""

    rate: Annotated[float, Field(gt=0)] = 1.0
    burst: Annotated[float, Field(ge=1)] = 3.0
