"""The `slack:` settings and the `destinations:` of the config, told apart by `type:`."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from relay.config.values import PacingConfig, Seconds, Strict, blank_is_none, not_a, seconds

# ---------------------------------------------------------------- slack and destinations


class SlackConfig(Strict):
    token: SecretStr | None = None
    api_url: str = "https://slack.com/api/"
    timeout: Seconds = 10.0

    _timeout = field_validator("timeout", mode="before")(seconds)
    _token = field_validator("token", mode="before")(blank_is_none)

    @field_validator("api_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise not_a(value, "an http(s) URL")
        return value if value.endswith("/") else value + "/"


class DestinationBase(Strict):
    """What every destination may set: its own pacing (else the config's `pacing`, else its
    chat's own default)."""

    pacing: PacingConfig | None = None


class SlackChannelDestination(DestinationBase):
    type: Literal["slack"]
    channel: Annotated[str, Field(min_length=1)]


class WebhookDestination(DestinationBase):
    type: Literal["webhook"]
    url: SecretStr | None = None

    _blank = field_validator("url", mode="before")(blank_is_none)

    @field_validator("url")
    @classmethod
    def _https(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(r"^https?://\S+$", value.get_secret_value()):
            raise ValueError("not an http(s) URL")
        return value


class ConsoleDestination(DestinationBase):
    type: Literal["console"]


_MM_SERVER = re.compile(r"^https?://[^/\s?#@]+(/[^\s?#@]*)?$")
_MM_ID = re.compile(r"^[a-z0-9]{26}$")  # every Mattermost id: 26 lower-case letters and digits
_MM_API = ("url", "token", "channel_id")
_MM_SERVER_FORM = "a server address such as https://mm.example.com (no user, query or fragment)"


class MattermostDestination(DestinationBase):
    """A Mattermost channel, in one of two modes: an incoming webhook (`webhook_url`), or the
    REST API as a bot (`url`, `token`, `channel_id`). Only the API answers the post's id, which
    threads and updates need. A blank `webhook_url` or `token` (an unset `${VAR:-}`) prints to
    the console instead."""

    type: Literal["mattermost"]
    webhook_url: SecretStr | None = None
    url: str | None = None
    token: SecretStr | None = None
    channel_id: str | None = None
    username: str | None = None  # webhook mode: shown instead of the hook's name, if allowed
    icon_url: str | None = None

    _blank = field_validator("webhook_url", "token", mode="before")(blank_is_none)

    @field_validator("webhook_url")
    @classmethod
    def _hook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(r"^https?://\S+$", value.get_secret_value()):
            raise ValueError("not an http(s) URL (expected {server}/hooks/{key})")
        return value

    @field_validator("url")
    @classmethod
    def _server(cls, value: str | None) -> str | None:
        if value is not None and not _MM_SERVER.match(value):  # not quoted: it may hold a password
            raise ValueError(f"not {_MM_SERVER_FORM}")
        return None if value is None else value.rstrip("/")

    @field_validator("channel_id")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not _MM_ID.match(value):
            raise not_a(value, "a channel ID (26 lower-case letters and digits)")
        return value

    @field_validator("icon_url")
    @classmethod
    def _icon(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://\S+$", value):
            raise not_a(value, "an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_mode(self) -> MattermostDestination:
        given = self.model_fields_set
        api = [name for name in _MM_API if name in given]
        if "webhook_url" in given and api:
            raise ValueError(
                f"webhook_url (webhook mode) cannot go with {', '.join(api)} (API mode): "
                "set one of the two"
            )
        if "webhook_url" not in given and not api:
            raise ValueError(
                "set webhook_url (an incoming webhook), or url, token and channel_id (the REST "
                "API with a bot token)"
            )
        if api:
            # the token may be blank (printed to the console), the server and channel may not
            missing = [name for name in _MM_API if name not in given]
            missing += [
                name
                for name in ("url", "channel_id")
                if name in given and getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"API mode needs {' and '.join(missing)} too")
            for name in ("username", "icon_url"):
                if name in given:
                    raise ValueError(f"{name} is for webhook mode (a bot posts as itself)")
        return self

    @property
    def mode(self) -> Literal["webhook", "api"]:
        return "webhook" if "webhook_url" in self.model_fields_set else "api"


Destination = Annotated[
    SlackChannelDestination | WebhookDestination | ConsoleDestination | MattermostDestination,
    Field(discriminator="type"),
]
