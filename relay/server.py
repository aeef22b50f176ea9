"""Assembly: config -> runtime, store, senders, worker, app; and running it under uvicorn.

The only place that reads the process environment for runtime settings (database URL, admin
token, port) and that creates network clients. `relay serve` calls `serve()`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import httpx
import uvicorn

from relay.config import LoadedConfig
from relay.delivery.console import STYLES, Style
from relay.delivery.destinations import Clients, build_senders
from relay.delivery.heartbeat import Heartbeat
from relay.delivery.senders import Sender
from relay.delivery.slack import Sessions, web_client
from relay.delivery.worker import Worker, settings
from relay.errors import ConfigError
from relay.http.app import build_app
from relay.http.protocol import bounded_protocol
from relay.ops.services import Services
from relay.runtime import Runtime, build_runtime
from relay.store import PostgresStore, open_store


def senders_for(
    runtime: Runtime,
    console: TextIO,
    http: httpx.AsyncClient | None = None,
    sessions: Sessions | None = None,
    console_style: Style = "json",
) -> dict[str, Sender]:
    """One sender per destination; without a Slack token every channel prints to the console,
    and so does any destination without its URL. `http` serves the chats reached over plain
    HTTP (one client for all of them, kept across reloads), `sessions` the Slack clients,
    `console_style` how the console prints (`relay serve`: readable, see `dry_run_style`)."""
    slack = runtime.config.slack
    web = None
    if not runtime.dry_run and slack.token is not None:
        web = web_client(
            slack.token.get_secret_value(), base_url=slack.api_url, timeout=int(slack.timeout)
        )
    clients = Clients(web, console, slack.timeout, http, sessions, console_style)
    return build_senders(runtime.config, clients)


def dry_run_style(env: Mapping[str, str]) -> Style:
    """How dry-run prints: `RELAY_DRY_RUN_FORMAT`, `text` (for people, the default) or `json`."""
    value = env.get("RELAY_DRY_RUN_FORMAT", "").strip().lower() or "text"
    for style in STYLES:
        if value == style:
            return style
    raise ConfigError([f"RELAY_DRY_RUN_FORMAT: expected 'text' or 'json', got '{value[:40]}'"])


def build_services(
    loaded: LoadedConfig, env: Mapping[str, str], cwd: Path, console: TextIO = sys.stdout
) -> Services:
    runtime = build_runtime(loaded)
    store = open_store(env.get("RELAY_DATABASE_URL"), cwd)
    # closed by the running services at shutdown (`Services.owns_http`)
    http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None))
    sessions = Sessions()
    style = dry_run_style(env)
    pacing, retry = settings(runtime.config, runtime.paces)
    worker = Worker(
        store,
        senders_for(runtime, console, http, sessions, style),
        pacing=pacing,
        retry=retry,
        lease_seconds=runtime.config.store.lease,
        # replicas take over the claims of one whose heartbeat is stale; one SQLite process has
        # nobody to take its claims over, so it neither beats nor fences itself
        heartbeat=Heartbeat(store) if isinstance(store, PostgresStore) else None,
    )

    def rebuild(new: LoadedConfig) -> tuple[Runtime, dict[str, Sender]]:
        fresh = build_runtime(new)
        # at start-up a broken template falls back to the safe default message; on reload the
        # templates that work are kept instead, with the config that goes with them
        problems = fresh.renderer.compile_problems(user_only=True)
        if problems:
            raise ConfigError(problems)
        return fresh, senders_for(fresh, console, http, sessions, style)

    return Services(
        runtime=runtime,
        store=store,
        worker=worker,
        admin_token=env.get("RELAY_ADMIN_TOKEN") or None,
        rebuild=rebuild,
        http=http,
        owns_http=True,
        closing=[sessions.close],
    )


def serve(loaded: LoadedConfig, host: str, port: int) -> None:
    services = build_services(loaded, os.environ, Path.cwd())
    app = build_app(services)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # relay never uses the client's address (no per-client rule, no address in the logs),
        # so X-Forwarded-For from Fly's or Render's proxy is not parsed on every request
        proxy_headers=False,
        # idle keep-alive connections are closed after 30 s: enough for a provider's bursts,
        # and a slow or idle client cannot hold a connection slot for long
        timeout_keep_alive=30,
        # Fly's kill_timeout is 30 s: finish in-flight Slack sends, then exit before SIGKILL
        timeout_graceful_shutdown=25,
        # beyond 1000 open requests answer 503 at once instead of queueing without bound
        limit_concurrency=1000,
        # httptools (C) with a bound on the request head: a head still incomplete past 64 KiB
        # is refused by the protocol, a complete one over it by the app (431 either way); the
        # protocol also answers an unparseable request (400) and the 503 above in JSON
        http=bounded_protocol(services.head_refused),
        # relay has no WebSocket endpoint: an `Upgrade` header is ignored and the request
        # answered as plain HTTP, instead of refused with uvicorn's bodiless 403
        ws="none",
        server_header=False,
    )
