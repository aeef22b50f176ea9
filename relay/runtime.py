"""The runtime: a validated config compiled into the objects the pipeline uses.

Built once per (re)load and treated as immutable: providers per source, the router, the
renderer, and per destination its pacing key. Nothing here does I/O beyond reading templates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from relay.config import Config, LoadedConfig
from relay.delivery.destinations import is_dry_run, pace_keys, paces
from relay.errors import ConfigError
from relay.providers import Provider, build_provider
from relay.render.renderer import Renderer
from relay.routing.router import Router


@dataclass(frozen=True)
class Runtime:
    loaded: LoadedConfig
    providers: dict[str, Provider]
    router: Router
    renderer: Renderer
    pace_keys: dict[str, str]
    dry_run: bool
    # (messages per second, burst) of each pacing key
    paces: dict[str, tuple[float, float]] = field(default_factory=dict)
    # the config file's text and the user's templates: what `/readyz` reports as `config`
    digest: str = ""

    @property
    def config(self) -> Config:
        return self.loaded.config


def build_runtime(loaded: LoadedConfig) -> Runtime:
    """Compile a loaded config; `ConfigError` (naming the source) if a provider refuses it."""
    config = loaded.config
    dry_run = is_dry_run(config)
    providers: dict[str, Provider] = {}
    problems: list[str] = []
    for name, source in config.sources.items():
        try:
            providers[name] = build_provider(name, source, config.server.max_json_depth)
        except ValueError as exc:  # their messages never quote a secret
            problems.append(f"sources.{name}: {exc}")
    if problems:
        raise ConfigError(problems)
    keys = pace_keys(config, dry_run)
    return Runtime(
        loaded=loaded,
        providers=providers,
        router=Router.from_config(config),
        renderer=Renderer(loaded.templates_dir),
        pace_keys=keys,
        dry_run=dry_run,
        paces=paces(config, keys),
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
