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
from relay.event import Event
from relay.runtime import Runtime, build_runtime
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


def anchor_event() -> Event:
    return Event("anchor", "anchor", "evt_reload", "task.completed", {"task_id": "tsk_1"})


TEMPLATE = '{"text": "%s {{ data.task_id }}", "blocks": []}'


async def test_templates_reload_with_the_config_and_a_broken_one_is_rejected(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "templates" / "anchor"
    folder.mkdir(parents=True)
    (folder / "task.completed.j2").write_text(TEMPLATE % "first")
    services = services_for(tmp_path, CONFIG + "templates: templates\n")
    first = services.runtime.digest
    assert services.runtime.renderer.render(anchor_event()).text == "first tsk_1"

    (folder / "task.completed.j2").write_text(TEMPLATE % "second")
    await services.reload()
    assert services.generation == 2 and services.runtime.digest != first
    assert services.pipeline.runtime.renderer.render(anchor_event()).text == "second tsk_1"

    second = services.runtime.digest
    (folder / "task.completed.j2").write_text('{"text": "{{ data.task_id }", "blocks": []}')
    with pytest.raises(ConfigError) as caught:
        await services.reload()
    assert caught.value.errors == ["template anchor/task.completed.j2: line 1: unexpected '}'"]
    assert services.generation == 2 and services.runtime.digest == second
    assert services.pipeline.runtime.renderer.render(anchor_event()).text == "second tsk_1"


def test_the_digest_covers_the_config_text_and_every_template_file(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG + "templates: templates\n")
    empty = build_runtime(load_config(config, env={})).digest
    (folder / "default.j2").write_text(TEMPLATE % "x")
    with_one = build_runtime(load_config(config, env={})).digest
    config.write_text(CONFIG + "templates: templates\n# a comment\n")
    commented = build_runtime(load_config(config, env={})).digest
    assert len({empty, with_one, commented}) == 3
    assert all(len(d) == 12 for d in (empty, with_one, commented))
