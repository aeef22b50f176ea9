"""Assembly: config -> runtime, store, worker (relay.assembly builds it and its
senders), app; and running it under uvicorn.

The only place that reads the process environment for runtime settings (database URL, admin
token, port) and that creates network clients. `relay serve` calls `serve()`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import uvicorn

from relay.assembly import (
    build_worker,
    child_deliveries,
    dry_run_style,
    http_client,
    senders_for,
)
from relay.config import Config, LoadedConfig
from relay.delivery.discord import GlobalLimit
from relay.delivery.process import Child, DeliveryProcess
from relay.delivery.senders import Sender
from relay.delivery.slack import Sessions
from relay.errors import ConfigError
from relay.http.app import build_app
from relay.http.protocol import bounded_protocol
from relay.logs import protected
from relay.ops.services import Delivery, Services
from relay.runtime import Runtime, build_runtime
from relay.store import open_store


def delivery_process(env: Mapping[str, str]) -> bool:
    """`RELAY_DELIVERY_PROCESS`: `on` runs the delivery worker in a process of its own
    (relay.delivery.process), `off` (the default) beside intake and the router."""
    value = env.get("RELAY_DELIVERY_PROCESS", "").strip().lower() or "off"
    if value not in ("on", "off"):
        raise ConfigError([f"RELAY_DELIVERY_PROCESS: expected 'on' or 'off', got '{value[:40]}'"])
    return value == "on"


def build_services(
    loaded: LoadedConfig, env: Mapping[str, str], cwd: Path, console: TextIO = sys.stdout
) -> Services:
    runtime = build_runtime(loaded)
    store = open_store(env.get("RELAY_DATABASE_URL"), cwd)
    # closed by the running services at shutdown (`Services.owns_http`)
    http = http_client()
    sessions = Sessions()
    style = dry_run_style(env)
    limit = GlobalLimit()  # Discord's, kept across reloads as the clients are
    in_process = not delivery_process(env)

    def senders(config: Config) -> dict[str, Sender]:
        if not in_process:
            return {}  # the delivery process builds its own, from the config it is sent
        return senders_for(config, console, http, sessions, style, limit)

    worker: Delivery
    if in_process:
        worker = build_worker(runtime.config, runtime.paces, store, senders(runtime.config))
    else:
        level = logging.getLevelName(logging.getLogger().level)
        worker = DeliveryProcess(
            Child(loaded, dict(env), cwd, level, protected(), child_deliveries)
        )

    def rebuild(new: LoadedConfig) -> tuple[Runtime, dict[str, Sender]]:
        fresh = build_runtime(new)
        # at start-up a broken template falls back to the safe default message; on reload the
        # templates that work are kept instead, with the config that goes with them
        problems = fresh.renderer.compile_problems(user_only=True)
        if problems:
            raise ConfigError(problems)
        return fresh, senders(fresh.config)

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
