"""The `slack:` settings and the `destinations:` of the config, told apart by `type:`."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from relay.config.values import PacingConfig, Seconds, Strict, blank_is_none, not_a, seconds

# ---------------------------------------------------------------- slack and destinations


class SlackConfig(Strict):
    token: SecretStr | None = None
    api_url: str = "https://slack.com/api/"
    timeout: Seconds = 10.0
    # the Slack app's signing secrets (several while one is rotated): with one, relay answers
    # button clicks at POST /slack/interactions (relay.interactions); blank ones are left out
    signing_secrets: list[SecretStr] = []

    _timeout = field_validator("timeout", mode="before")(seconds)
    _token = field_validator("token", mode="before")(blank_is_none)

    @field_validator("signing_secrets", mode="before")
    @classmethod
    def _secrets(cls, value: object) -> object:
        if isinstance(value, str | SecretStr):
            value = [value]  # one secret given without a list
        if isinstance(value, list):  # an unset `${VAR:-}` leaves a blank entry: no secret
            return [v for v in value if not (isinstance(v, str) and not v.strip())]
        return value

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
    # the channel the webhook posts in: destinations naming the same channel share one pace,
    # as Discord limits a channel across all of its webhooks
    channel_id: str | None = None

    _blank = field_validator("webhook_url", "thread_id", "channel_id", mode="before")(blank_is_none)
    _url = field_validator("webhook_url")(secret_http_url)

    @field_validator("thread_id", "channel_id", mode="before")
    @classmethod
    def _snowflake(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # YAML reads an unquoted id as a number
        if isinstance(value, str) and not re.match(r"^[0-9]{5,25}$", value):
            what = "thread" if info.field_name == "thread_id" else "channel"
            raise not_a(value, f"a Discord {what} id (its digits, e.g. 1234567890123456789)")
        return value

    @model_validator(mode="after")
    def _one_thread(self) -> DiscordDestination:
        if self.forum and self.thread_id is not None:
            raise ValueError(
                "`thread_id` posts every message into one thread, `forum: true` starts one per"
                " conversation: set one of them"
            )
        return self


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
    SlackChannelDestination
    | WebhookDestination
    | ConsoleDestination
    | TeamsDestination
    | GoogleChatDestination
    | DiscordDestination
    | MattermostDestination,
    Field(discriminator="type"),
]
