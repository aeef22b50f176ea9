"""Reload in-process (`Services.reload`): a new config is swapped in whole or not at all; one that
cannot be used is rejected with a message and the previous runtime keeps serving. Reload of a
real process by HTTP and SIGHUP is in test_operations.py."""

from __future__ import annotations

import gc
import io
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from slackview import view

from relay.config import LoadedConfig, load_config
from relay.delivery.senders import Sender
from relay.errors import ConfigError
from relay.event import Event
from relay.http.app import Services
from relay.records import Status
from relay.runtime import Runtime, build_runtime
from relay.server import build_services

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [reload-test-secret]}
destinations:
  events: {type: console}
default: {to: [events]}
"""


Opener = Callable[..., Awaitable[Services]]


@pytest.fixture
async def services_for(tmp_path: Path) -> AsyncIterator[Opener]:
    """Services of a relay on `tmp_path`, its store open, as in a running process."""
    opened: list[Services] = []

    async def open_services(text: str = CONFIG) -> Services:
        config = tmp_path / "relay.yaml"
        config.write_text(text)
        env = {"RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db"}
        services = build_services(load_config(config, env={}), env, tmp_path, io.StringIO())
        await services.store.open()
        opened.append(services)
        return services

    yield open_services
    for services in opened:
        await services.store.close()


def metric(services: Services, result: str) -> float:
    value = services.metrics.registry.get_sample_value(
        "relay_config_reloads_total", {"result": result}
    )
    return value or 0.0


async def test_a_runtime_that_cannot_be_built_is_rejected_not_a_crash(
    tmp_path: Path, services_for: Opener
) -> None:
    services = await services_for()
    before = services.runtime

    def broken(_loaded: LoadedConfig) -> tuple[Runtime, dict[str, Sender]]:
        raise RuntimeError("boom: reload-test-secret")

    services.rebuild = broken
    with pytest.raises(ConfigError) as caught:
        await services.reload()
    assert caught.value.public == [
        f"{tmp_path / 'relay.yaml'}: the new config cannot be used (RuntimeError); "
        "`relay check` shows why"
    ]
    assert services.runtime is before and services.pipeline.runtime is before
    assert services.generation == 1
    assert metric(services, "rejected") == 1 and metric(services, "ok") == 0


async def test_a_secret_a_provider_cannot_use_is_rejected_naming_the_source(
    tmp_path: Path, services_for: Opener
) -> None:
    services = await services_for()
    (tmp_path / "relay.yaml").write_text(CONFIG.replace("]}", "], key_encoding: hex}", 1))
    with pytest.raises(ConfigError) as caught:
        await services.reload()
    assert caught.value.public == ["sources.anchor: key_encoding 'hex' needs secrets of hex digits"]
    assert services.generation == 1


def anchor_event() -> Event:
    return Event("anchor", "anchor", "evt_reload", "task.completed", {"task_id": "tsk_1"})


TEMPLATE = '{"text": "%s {{ data.task_id }}", "blocks": []}'


def first_template(tmp_path: Path) -> Path:
    """A templates folder whose anchor/task.completed says "first"; the folder of it."""
    folder = tmp_path / "templates" / "anchor"
    folder.mkdir(parents=True)
    (folder / "task.completed.j2").write_text(TEMPLATE % "first")
    return folder


async def test_templates_reload_with_the_config_and_a_broken_one_is_rejected(
    tmp_path: Path, services_for: Opener
) -> None:
    folder = first_template(tmp_path)
    services = await services_for(CONFIG + "templates: templates\n")
    first = services.runtime.digest
    assert view(services.runtime.renderer.render(anchor_event())).text == "first tsk_1"

    (folder / "task.completed.j2").write_text(TEMPLATE % "second")
    await services.reload()
    assert services.generation == 2 and services.runtime.digest != first
    assert view(services.pipeline.runtime.renderer.render(anchor_event())).text == "second tsk_1"

    second = services.runtime.digest
    (folder / "task.completed.j2").write_text('{"text": "{{ data.task_id }", "blocks": []}')
    with pytest.raises(ConfigError) as caught:
        await services.reload()
    assert caught.value.public == ["template anchor/task.completed.j2: line 1: unexpected '}'"]
    assert services.generation == 2 and services.runtime.digest == second
    assert view(services.pipeline.runtime.renderer.render(anchor_event())).text == "second tsk_1"


async def test_events_accepted_before_a_reload_keep_the_templates_they_came_under(
    tmp_path: Path, services_for: Opener
) -> None:
    folder = first_template(tmp_path)
    services = await services_for(CONFIG + "templates: templates\n")
    await services.pipeline.accept(replace(anchor_event(), id="before"))
    (folder / "task.completed.j2").write_text(TEMPLATE % "second")
    await services.reload()
    await services.pipeline.accept(replace(anchor_event(), id="after"))
    # nothing was routed yet: both wait in the inbox, accepted under different configs
    assert (await services.store.inbox_stats()).waiting == 2
    while await services.pipeline.route_pending():
        pass
    queued = {r.event_id: r.message.text for r in await services.store.rows(Status.PENDING)}
    assert queued == {"before": "first tsk_1", "after": "second tsk_1"}


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


async def test_a_reload_gives_the_old_config_back_to_the_collector(services_for: Opener) -> None:
    services = await services_for()
    services.settle()  # as at start-up: everything alive is out of the collector's passes
    try:
        old = weakref.ref(services.runtime.renderer._env)  # compiled templates hold cycles
        await services.pipeline.accept(anchor_event())
        await services.reload()
        while await services.pipeline.route_pending():  # the old config renders its event
            pass
        assert await services.pipeline.route_pending() == 0  # no event needs it any more
        gc.collect()
        assert old() is None
        assert gc.get_freeze_count() > 0  # settled again, with the new config
    finally:
        gc.unfreeze()
