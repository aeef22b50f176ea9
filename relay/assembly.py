"""Assembly of the delivery side: a runtime's senders and the worker that sends through them.

`relay serve` (relay.server) builds them for the worker beside intake and the router; the
delivery process (relay.delivery.process) builds its own here, without importing the HTTP
server, the console or the admin API.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from relay.config import Config, LoadedConfig
from relay.delivery.console import STYLES, Style
from relay.delivery.destinations import Clients, build_senders, is_dry_run, pace_keys, paces
from relay.delivery.discord import GlobalLimit
from relay.delivery.heartbeat import Heartbeat
from relay.delivery.policy import settings
from relay.delivery.senders import Sender
from relay.delivery.slack import Sessions, web_client
from relay.delivery.worker import Worker
from relay.errors import ConfigError
from relay.store import SqliteStore, Store, open_store


def http_client() -> httpx.AsyncClient:
    """The client of the chats reached over plain HTTP and of the Tabstack runs: 30 s to
    connect and write, no read timeout (a Tabstack run streams for as long as it runs; each
    sender bounds its own request)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None))


def senders_for(
    config: Config,
    console: TextIO,
    http: httpx.AsyncClient | None = None,
    sessions: Sessions | None = None,
    console_style: Style = "json",
    discord_limit: GlobalLimit | None = None,
) -> dict[str, Sender]:
    """One sender per destination; without a Slack token every channel prints to the console,
    and so does any destination without its URL. `http` serves the chats reached over plain
    HTTP (one client for all of them, kept across reloads), `sessions` the Slack clients,
    `console_style` how the console prints (`relay serve`: readable, see `dry_run_style`),
    `discord_limit` Discord's global rate limit (kept across reloads too)."""
    slack = config.slack
    web = None
    if slack.token is not None:
        web = web_client(
            slack.token.get_secret_value(), base_url=slack.api_url, timeout=int(slack.timeout)
        )
    clients = Clients(
        web, console, slack.timeout, http, sessions, console_style, discord_limit or GlobalLimit()
    )
    return build_senders(config, clients)


def dry_run_style(env: Mapping[str, str]) -> Style:
    """How dry-run prints: `RELAY_DRY_RUN_FORMAT`, `text` (for people, the default) or `json`."""
    value = env.get("RELAY_DRY_RUN_FORMAT", "").strip().lower() or "text"
    for style in STYLES:
        if value == style:
            return style
    raise ConfigError([f"RELAY_DRY_RUN_FORMAT: expected 'text' or 'json', got '{value[:40]}'"])


def build_worker(
    config: Config,
    paces: Mapping[str, tuple[float, float]],
    store: Store,
    senders: Mapping[str, Sender],
) -> Worker:
    """The worker a config asks for, sending through `senders`, each pacing key at its `paces`
    (Runtime.paces)."""
    pacing, retry = settings(config, paces)
    return Worker(
        store,
        senders,
        pacing=pacing,
        retry=retry,
        lease_seconds=config.store.lease,
        # replicas take over the claims of one whose heartbeat is stale; one SQLite process has
        # nobody to take its claims over, so it neither beats nor fences itself
        heartbeat=None if isinstance(store, SqliteStore) else Heartbeat(store),
    )


@dataclass
class ChildDeliveries:
    """The delivery process's worker and the clients its senders use."""

    worker: Worker
    console: TextIO
    http: httpx.AsyncClient
    sessions: Sessions
    style: Style
    discord_limit: GlobalLimit

    def reload(self, loaded: LoadedConfig) -> None:
        config = loaded.config
        senders = senders_for(
            config, self.console, self.http, self.sessions, self.style, self.discord_limit
        )
        self.worker.reconfigure(senders, *settings(config, delivery_paces(config)))

    async def close(self) -> None:
        await self.http.aclose()
        await self.sessions.close()


def child_deliveries(loaded: LoadedConfig, env: dict[str, str], cwd: Path) -> ChildDeliveries:
    """What the delivery process runs (relay.delivery.child), built as `build_services`
    builds the worker, from the config alone: no providers, router or templates."""
    config = loaded.config
    store = open_store(env.get("RELAY_DATABASE_URL"), cwd)
    http = http_client()
    sessions = Sessions()
    style = dry_run_style(env)
    limit = GlobalLimit()
    senders = senders_for(config, sys.stdout, http, sessions, style, limit)
    worker = build_worker(config, delivery_paces(config), store, senders)
    return ChildDeliveries(worker, sys.stdout, http, sessions, style, limit)


def delivery_paces(config: Config) -> dict[str, tuple[float, float]]:
    """The (rate, burst) of each pacing key, as `build_runtime` finds them."""
    return paces(config, pace_keys(config, is_dry_run(config)))
