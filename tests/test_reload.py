"""Reload in-process (`Services.reload`): a new config is swapped in whole or not at all; one that
cannot be used is rejected with a message and the previous runtime keeps serving. Reload of a
real process by HTTP and SIGHUP is in test_operations.py."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from relay.app import Services
from relay.config import LoadedConfig, load_config
from relay.deliver import Sender
from relay.errors import ConfigError
from relay.runtime import Runtime
from relay.server import build_services

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [reload-test-secret]}
destinations:
  events: {type: console}
default: {to: [events]}
"""


def services_for(tmp_path: Path, text: str = CONFIG) -> Services:
    config = tmp_path / "relay.yaml"
    config.write_text(text)
    env = {"RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db"}
    return build_services(load_config(config, env={}), env, tmp_path, io.StringIO())


def metric(services: Services, result: str) -> float:
    value = services.metrics.registry.get_sample_value(
        "relay_config_reloads_total", {"result": result}
    )
    return value or 0.0


async def test_a_runtime_that_cannot_be_built_is_rejected_not_a_crash(tmp_path: Path) -> None:
    services = services_for(tmp_path)
    before = services.runtime

    def broken(_loaded: LoadedConfig) -> tuple[Runtime, dict[str, Sender]]:
        raise RuntimeError("boom: reload-test-secret")

    services.rebuild = broken
    with pytest.raises(ConfigError) as caught:
        await services.reload()
    assert caught.value.errors == [
        f"{tmp_path / 'relay.yaml'}: the new config cannot be used (RuntimeError); "
        "`relay check` shows why"
    ]
    assert services.runtime is before and services.pipeline.runtime is before
    assert services.generation == 1
    assert metric(services, "rejected") == 1 and metric(services, "ok") == 0


async def test_a_secret_a_provider_cannot_use_is_rejected_naming_the_source(
    tmp_path: Path,
) -> None:
    services = services_for(tmp_path)
    (tmp_path / "relay.yaml").write_text(CONFIG.replace("]}", "], key_encoding: hex}", 1))
    with pytest.raises(ConfigError) as caught:
        await services.reload()
    assert caught.value.errors == ["sources.anchor: key_encoding 'hex' needs secrets of hex digits"]
    assert services.generation == 1
