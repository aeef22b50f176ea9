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


def secret_http_url(value: SecretStr | None) -> SecretStr | None:
    """A secret URL must be http(s); the message never repeats it."""
    if value is not None and not re.match(r"^https?://\S+$", value.get_secret_value()):
        raise ValueError("not an http(s) URL")
    return value


class WebhookDestination(DestinationBase):
    type: Literal["webhook"]
    url: SecretStr | None = None

    _blank = field_validator("url", mode="before")(blank_is_none)
    _url = field_validator("url")(secret_http_url)


class ConsoleDestination(DestinationBase):
    type: Literal["console"]


class TeamsDestination(DestinationBase):
    """Microsoft Teams through a Workflows (Power Automate) webhook: its URL is a secret (the
    `sig=` in it is the only credential). Without one, messages print to the console."""

    type: Literal["teams"]
    workflow_url: SecretStr | None = None

    _blank = field_validator("workflow_url", mode="before")(blank_is_none)
    _url = field_validator("workflow_url")(secret_http_url)


class GoogleChatDestination(DestinationBase):
    """A Google Chat space's incoming webhook: `https://chat.googleapis.com/v1/spaces/SPACE/
    messages?key=KEY&token=TOKEN` (a secret). Without one, messages print to the console."""

    type: Literal["google_chat"]
    webhook_url: SecretStr | None = None

    _blank = field_validator("webhook_url", mode="before")(blank_is_none)
    _url = field_validator("webhook_url")(secret_http_url)


class DiscordDestination(DestinationBase):
    """A Discord channel webhook. `thread_id` posts every message into that existing thread;
    `forum: true` is for a forum or media channel, where each conversation is a post of its
    own (its first message starts the thread)."""

    type: Literal["discord"]
    webhook_url: SecretStr | None = None
    thread_id: str | None = None
    forum: bool = False

    _blank = field_validator("webhook_url", "thread_id", mode="before")(blank_is_none)
    _url = field_validator("webhook_url")(secret_http_url)

    @field_validator("thread_id", mode="before")
    @classmethod
    def _snowflake(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # YAML reads an unquoted id as a number
        if isinstance(value, str) and not re.match(r"^[0-9]{5,25}$", value):
            raise not_a(value, "a Discord thread id (its digits, e.g. 1234567890123456789)")
        return value

    @model_validator(mode="after")
    def _one_thread(self) -> DiscordDestination:
        if self.forum and self.thread_id is not None:
            raise ValueError(
                "`thread_id` posts every message into one thread, `forum: true` starts one per"
                " conversation: set one of them"
            )
        return self


Destination = Annotated[
    SlackChannelDestination
    | WebhookDestination
    | ConsoleDestination
    | TeamsDestination
    | GoogleChatDestination
    | DiscordDestination,
    Field(discriminator="type"),
]
