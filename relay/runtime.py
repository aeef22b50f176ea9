"""The runtime: a validated config compiled into the objects the pipeline uses.

Built once per (re)load and treated as immutable: providers per source, the router, the
renderer, and per destination its pacing key. Nothing here does I/O beyond reading templates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.config import (
    AnchorSource,
    ConsoleDestination,
    DeckSource,
    GenericSource,
    LoadedConfig,
    SlackChannelDestination,
    TabstackSource,
    WebhookDestination,
)
from relay.errors import ConfigError
from relay.providers.anchor import AnchorProvider
from relay.providers.base import MAX_JSON_DEPTH, Provider
from relay.providers.deck import DeckProvider
from relay.providers.generic import GenericProvider
from relay.providers.tabstack import TabstackProvider
from relay.render import Renderer
from relay.routing import Router


def _secrets(values: list[Any]) -> list[str]:
    return [v.get_secret_value() for v in values]


def build_provider(name: str, source: Any, max_json_depth: int = MAX_JSON_DEPTH) -> Provider:
    if isinstance(source, AnchorSource):
        return AnchorProvider(
            name,
            _secrets(source.secrets),
            tolerance_s=source.tolerance,
            key_encoding=source.key_encoding,
            max_json_depth=max_json_depth,
        )
    if isinstance(source, DeckSource):
        return DeckProvider(
            name,
            _secrets(source.secrets),
            tolerance_s=source.tolerance,
            max_json_depth=max_json_depth,
        )
    if isinstance(source, TabstackSource):
        token = source.token.get_secret_value() if source.token else None
        return TabstackProvider(name, token, max_json_depth=max_json_depth)
    if isinstance(source, GenericSource):
        return GenericProvider(
            name,
            id_path=source.id_path,
            type_path=source.type_path,
            data_path=source.data_path,
            created_path=source.created_path,
            text_path=source.text_path,
            secrets=_secrets(source.secrets),
            signature_header=source.signature_header,
            signature_prefix=source.signature_prefix,
            token=source.token.get_secret_value() if source.token else None,
            timestamp_header=source.timestamp_header,
            tolerance_s=source.tolerance,
            max_json_depth=max_json_depth,
        )
    raise TypeError(f"no provider for {type(source).__name__}")


def pace_key(destination: Any, dry_run: bool) -> str:
    """The key that paces a destination: one Slack channel or one webhook URL.

    Routes that target the same channel through different destination names share it.
    """
    if isinstance(destination, SlackChannelDestination):
        return "console" if dry_run else f"slack:{destination.channel.lstrip('#').lower()}"
    if isinstance(destination, WebhookDestination) and destination.url is not None:
        digest = hashlib.sha256(destination.url.get_secret_value().encode()).hexdigest()[:16]
        return f"webhook:{digest}"
    return "console"


@dataclass(frozen=True)
class Runtime:
    loaded: LoadedConfig
    providers: dict[str, Provider]
    router: Router
    renderer: Renderer
    pace_keys: dict[str, str]
    dry_run: bool
    # the config file's text and the user's templates: what `/readyz` reports as `config`
    digest: str = ""

    @property
    def config(self) -> Any:
        return self.loaded.config

    def is_console(self, destination: str) -> bool:
        return self.pace_keys[destination] == "console"


def build_runtime(loaded: LoadedConfig) -> Runtime:
    """Compile a loaded config; `ConfigError` (naming the source) if a provider refuses it."""
    config = loaded.config
    dry_run = config.slack.token is None
    providers: dict[str, Provider] = {}
    problems: list[str] = []
    for name, source in config.sources.items():
        try:
            providers[name] = build_provider(name, source, config.server.max_json_depth)
        except ValueError as exc:  # their messages never quote a secret
            problems.append(f"sources.{name}: {exc}")
    if problems:
        raise ConfigError(problems)
    return Runtime(
        loaded=loaded,
        providers=providers,
        router=Router.from_config(config),
        renderer=Renderer(loaded.templates_dir),
        pace_keys={name: pace_key(d, dry_run) for name, d in config.destinations.items()},
        dry_run=dry_run,
        digest=digest(loaded),
    )


def template_files(loaded: LoadedConfig) -> list[Path]:
    """Every file of the user's templates folder, sorted; none without a folder."""
    folder = loaded.templates_dir
    if folder is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file())


def digest(loaded: LoadedConfig) -> str:
    """12 hex digits of SHA-256 over the config text and every file of the templates folder, so
    a reload after a template edit shows a new value; the config's own digest without one."""
    if loaded.templates_dir is None:
        return loaded.digest
    hasher = hashlib.sha256(loaded.digest.encode())
    for path in template_files(loaded):
        hasher.update(b"\0" + path.relative_to(loaded.templates_dir).as_posix().encode() + b"\0")
        hasher.update(path.read_bytes())
    return hasher.hexdigest()[:12]


def describe_destination(destination: Any, dry_run: bool) -> str:
    """Where a destination posts, without secrets (a webhook URL is never shown)."""
    if isinstance(destination, SlackChannelDestination):
        return f"slack {destination.channel}" + (" (dry-run: console)" if dry_run else "")
    if isinstance(destination, WebhookDestination):
        return "slack incoming webhook" + ("" if destination.url else " (no URL: console)")
    if isinstance(destination, ConsoleDestination):
        return "console"
    return "unknown"
