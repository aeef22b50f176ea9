"""The whole config (`Config`), its server, store and pacing settings, and a config as loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

from relay.config.destinations import Destination, SlackConfig
from relay.config.routes import DefaultRoute, Route, TimeInterval
from relay.config.sources import Source
from relay.config.values import NAME, PacingConfig, Seconds, Strict, invalid, seconds


class ServerConfig(Strict):
    max_body_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    # JSON nested deeper is refused (400); Python's json decoder stops near 1000 by itself
    max_json_depth: Annotated[int, Field(gt=0, le=512)] = 64
    # poll the config file and templates folder this often and reload on a change; off if null
    watch: Seconds | None = None

    _watch = field_validator("watch", mode="before")(seconds)


class StoreConfig(Strict):
    dedup_ttl: Seconds = 86400.0
    max_age: Seconds = 86400.0
    # a claimed delivery is retaken by any replica after this, even from a live one (the
    # backstop: a dead replica's claims are retaken once its heartbeat is stale, see
    # relay.delivery.heartbeat)
    lease: Seconds = 60.0
    # how long every routed event, its messages and their attempts are kept (the /api/ history)
    history: Seconds = 7 * 86400.0

    _durations = field_validator("dedup_ttl", "max_age", "lease", "history", mode="before")(seconds)


class Config(Strict):
    sources: dict[str, Source]
    slack: SlackConfig = SlackConfig()
    destinations: dict[str, Destination]
    routes: list[Route] = []
    default: DefaultRoute = DefaultRoute()
    templates: str | None = None
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    pacing: PacingConfig = PacingConfig()
    time_intervals: dict[str, list[TimeInterval]] = {}

    @field_validator("sources", "destinations")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for number, name in enumerate(value, 1):
            if not NAME.match(name):  # perhaps a secret pasted one line too high
                raise invalid(
                    name,
                    f"name #{number} must be lower-case letters, digits, - or _",
                    "name '{value}' must be lower-case letters, digits, - or _",
                )
        return value


class LoadedConfig(BaseModel):
    """A validated config with where it came from; `templates_dir` resolved against the file."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    config: Config
    path: Path
    templates_dir: Path | None
    digest: str
