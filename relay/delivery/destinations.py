"""Destination kinds: for each `type:` of the config's destinations, the one place that says how
relay paces it, how it is described (never with a secret), and which sender delivers to it.

`KINDS` maps the config model of a destination type to its `Kind`; adding a chat is adding
its sender module and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx
from slack_sdk.web.async_client import AsyncWebClient

from relay.config import (
    Config,
    ConsoleDestination,
    Destination,
    DiscordDestination,
    GoogleChatDestination,
    MattermostDestination,
    SlackChannelDestination,
    TeamsDestination,
    WebhookDestination,
)
from relay.delivery import discord as discord_webhook
from relay.delivery import google_chat as gchat
from relay.delivery import mattermost
from relay.delivery.console import ConsoleSender, Style
from relay.delivery.http import secret_digest
from relay.delivery.senders import Sender
from relay.delivery.slack import (
    Sessions,
    SlackChannelSender,
    SlackWebhookSender,
    webhook_client,
)
from relay.delivery.teams import TeamsSender
from relay.delivery.teams import warnings as teams_warnings
from relay.messages import Message
from relay.render.formats import discord, google_chat, slack, teams
from relay.render.formats import mattermost as mattermost_format


@dataclass(frozen=True, slots=True)
class Clients:
    """What senders share: the Slack Web API client (None in dry-run), the HTTP client of the
    chats reached over plain HTTP, where dry-run prints, and how long a chat may take to
    answer."""

    slack: AsyncWebClient | None
    console: TextIO
    timeout: float
    http: httpx.AsyncClient | None = None
    slack_sessions: Sessions | None = None  # keeps Slack's connections alive
    console_style: Style = "json"  # how dry-run prints: readable text, or the payload's JSON
    # Discord's global rate limit, which holds every Discord webhook at once (the process keeps
    # one across reloads: a reload during a hold must not send into it)
    discord_limit: discord_webhook.GlobalLimit = field(default_factory=discord_webhook.GlobalLimit)


@dataclass(frozen=True, slots=True)
class Kind:
    """What relay needs to know about one type of destination."""

    # the key that paces it: one rate budget per channel or webhook, shared by every route to it
    pace_key: Callable[[Any, bool], str]
    describe: Callable[[Any, bool], str]
    sender: Callable[[str, Any, Clients], Sender]
    # the chat's native payload for a message (what `relay render` shows; senders send it)
    format: Callable[[Message], Mapping[str, Any]] = slack.payload
    chat: str = "slack"  # the chat it reaches: whose mentions and templates it takes
    # what its conversations can do (`relay check` warns when a route asks for more): for
    # every destination of the type, or as the destination's settings say
    threads: bool | Callable[[Any], bool] = True
    updates: bool | Callable[[Any], bool] = True
    # whether it has a form for a config mention name (`relay check` warns when not)
    takes_mention: Callable[[str], bool] = slack.takes_mention
    # what `relay check` should say about a destination's settings (an unusual host, say)
    warnings: Callable[[Any], list[str]] = lambda _destination: []
    # the pace its chat allows, when the config sets none: (messages per second, burst)
    pacing: tuple[float, float] | None = None

    def can_thread(self, destination: Any) -> bool:
        return self.threads(destination) if callable(self.threads) else self.threads

    def can_update(self, destination: Any) -> bool:
        return self.updates(destination) if callable(self.updates) else self.updates


def _slack_key(d: SlackChannelDestination, dry_run: bool) -> str:
    return "console" if dry_run else f"slack:{d.channel.lstrip('#').lower()}"


def _slack_sender(name: str, d: SlackChannelDestination, clients: Clients) -> Sender:
    if clients.slack is None:
        return ConsoleSender(clients.console, name, d.channel, style=clients.console_style)
    return SlackChannelSender(clients.slack, d.channel, clients.slack_sessions)


def _webhook_key(d: WebhookDestination, dry_run: bool) -> str:
    del dry_run  # a webhook carries its own credentials
    return "console" if d.url is None else f"webhook:{secret_digest(d.url.get_secret_value())}"


def _webhook_sender(name: str, d: WebhookDestination, clients: Clients) -> Sender:
    if d.url is None:
        return ConsoleSender(clients.console, name, style=clients.console_style)
    hook = webhook_client(d.url.get_secret_value(), timeout=int(clients.timeout))
    return SlackWebhookSender(hook, clients.slack_sessions)


def _teams_key(d: TeamsDestination, dry_run: bool) -> str:
    del dry_run  # a Workflows URL carries its own credential
    url = d.workflow_url
    return "console" if url is None else f"teams:{secret_digest(url.get_secret_value())}"


def _teams_sender(name: str, d: TeamsDestination, clients: Clients) -> Sender:
    if d.workflow_url is None:
        return ConsoleSender(
            clients.console, name, chat="teams", format=teams.payload, style=clients.console_style
        )
    return TeamsSender(clients.http, d.workflow_url.get_secret_value(), clients.timeout)


KINDS: Mapping[type[Any], Kind] = {
    SlackChannelDestination: Kind(
        pace_key=_slack_key,
        describe=lambda d, dry: f"slack {d.channel}" + (" (dry-run: console)" if dry else ""),
        sender=_slack_sender,
    ),
    WebhookDestination: Kind(
        pace_key=_webhook_key,
        describe=lambda d, _dry: "slack incoming webhook" + ("" if d.url else " (no URL: console)"),
        sender=_webhook_sender,
        threads=False,  # an incoming webhook answers no ts: nothing to reply under or update
        updates=False,
    ),
    TeamsDestination: Kind(
        pace_key=_teams_key,
        describe=lambda d, _dry: (
            "teams workflow" + ("" if d.workflow_url else " (no URL: console)")
        ),
        sender=_teams_sender,
        format=teams.payload,
        chat="teams",
        threads=False,  # a Workflows webhook answers 202 with no message id
        updates=False,
        takes_mention=teams.takes_mention,
        warnings=teams_warnings,
        pacing=(3.5, 1.0),  # Teams throttles more than about 4 requests a second
    ),
    GoogleChatDestination: Kind(
        pace_key=gchat.pace_key,
        describe=gchat.describe,
        sender=lambda name, d, clients: gchat.sender(
            name, d, clients.console, clients.http, clients.timeout, clients.console_style
        ),
        format=google_chat.payload,
        chat="google_chat",
        threads=True,  # by thread key
        updates=False,  # a webhook cannot edit a message: the new state is posted as a reply
        takes_mention=google_chat.takes_mention,
        warnings=gchat.warnings,
        pacing=gchat.PACING,
    ),
    DiscordDestination: Kind(
        pace_key=discord_webhook.pace_key,
        describe=discord_webhook.describe,
        sender=discord_webhook.sender,
        format=discord.payload,
        chat="discord",
        threads=discord_webhook.threads,  # a forum's posts; a text channel's replies are flat
        updates=True,
        takes_mention=discord.takes_mention,
        warnings=discord_webhook.warnings,
        pacing=discord_webhook.PACING,
    ),
    ConsoleDestination: Kind(
        pace_key=lambda _d, _dry: "console",
        describe=lambda _d, _dry: "console",
        sender=lambda name, _d, clients: ConsoleSender(
            clients.console, name, style=clients.console_style
        ),
    ),
    MattermostDestination: Kind(
        pace_key=mattermost.pace_key,
        describe=mattermost.describe,
        sender=mattermost.sender,
        format=mattermost_format.payload,
        chat="mattermost",
        threads=mattermost.api_mode,  # an incoming webhook answers no post id
        updates=mattermost.api_mode,
        takes_mention=mattermost_format.takes_mention,
        warnings=mattermost.warnings,
        pacing=mattermost.PACING,
    ),
}


def kind(destination: Destination) -> Kind:
    return KINDS[type(destination)]


def is_dry_run(config: Config) -> bool:
    """Without a Slack token relay sends nothing to Slack: its channels print to the console."""
    return config.slack.token is None


def pace_keys(config: Config, dry_run: bool) -> dict[str, str]:
    return {name: kind(d).pace_key(d, dry_run) for name, d in config.destinations.items()}


def paces(config: Config, keys: Mapping[str, str]) -> dict[str, tuple[float, float]]:
    """The (rate, burst) of each pacing key: the destination's own `pacing`, else the config's
    `pacing` when the file sets one, else its chat's default, else one a second with a burst of
    three. Destinations sharing a key share the strictest."""
    given = "pacing" in config.model_fields_set
    found: dict[str, tuple[float, float]] = {}
    for name, destination in config.destinations.items():
        own = destination.pacing
        if own is None and given:
            own = config.pacing
        pace = (own.rate, own.burst) if own is not None else kind(destination).pacing
        if pace is None:
            pace = (config.pacing.rate, config.pacing.burst)
        key = keys[name]
        before = found.get(key)
        found[key] = pace if before is None else (min(before[0], pace[0]), min(before[1], pace[1]))
    return found


def describe(destination: Destination, dry_run: bool) -> str:
    """Where a destination posts, without secrets (a webhook URL is never shown)."""
    return kind(destination).describe(destination, dry_run)


def native(destination: Destination, message: Message) -> Mapping[str, Any]:
    """The payload a destination's chat is sent for a message."""
    return kind(destination).format(message)


def build_senders(config: Config, clients: Clients) -> dict[str, Sender]:
    """One sender per destination."""
    return {name: kind(d).sender(name, d, clients) for name, d in config.destinations.items()}
