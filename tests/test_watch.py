"""Watching the config file and templates folder (`relay.watch`): a change reloads once, an
unchanged tree never does, a rejected change is not retried until the files change again."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from relay.config import LoadedConfig, load_config
from relay.errors import ConfigError
from relay.ops import watch as watch_module
from relay.ops.watch import fingerprint, watch

CONFIG = """
sources: {anchor: {provider: anchor, secrets: [watch-secret]}}
destinations: {events: {type: console}}
templates: templates
"""


def touch(path: Path, text: str, step: int) -> None:
    """Write and move the mtime on, so that coarse file system clocks see a change."""
    path.write_text(text)
    stamp = 1_700_000_000_000_000_000 + step * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


class Reloads:
    def __init__(self, loaded: LoadedConfig, reject: bool = False) -> None:
        self.loaded = loaded
        self.reject = reject
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.reject:
            raise ConfigError(["rejected"])
        self.loaded = load_config(self.loaded.path, env={})


async def run_for(
    seconds: float,
    reloads: Reloads,
    interval: float | None,
    between: Callable[[], Awaitable[None]] | None = None,
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(watch(lambda: reloads.loaded, lambda: interval, reloads, stop))
    await asyncio.sleep(seconds / 2)
    if between is not None:
        await between()
    await asyncio.sleep(seconds / 2)
    stop.set()
    await task


def setup(tmp_path: Path) -> LoadedConfig:
    (tmp_path / "templates" / "anchor").mkdir(parents=True)
    touch(tmp_path / "relay.yaml", CONFIG, 0)
    touch(tmp_path / "templates" / "anchor" / "default.j2", "{}", 0)
    return load_config(tmp_path / "relay.yaml", env={})


def test_the_fingerprint_covers_the_config_and_every_template(tmp_path: Path) -> None:
    loaded = setup(tmp_path)
    first = fingerprint(loaded)
    assert [Path(p).name for p, _, _ in first] == ["relay.yaml", "default.j2"]
    touch(tmp_path / "templates" / "anchor" / "default.j2", "{ }", 1)
    second = fingerprint(loaded)
    (tmp_path / "templates" / "anchor" / "task.failed.j2").write_text("{}")
    third = fingerprint(loaded)
    assert len({first, second, third}) == 3


async def test_an_unchanged_tree_is_never_reloaded(tmp_path: Path) -> None:
    reloads = Reloads(setup(tmp_path))
    await run_for(0.4, reloads, interval=0.02)
    assert reloads.calls == 0


async def test_a_change_reloads_once(tmp_path: Path) -> None:
    reloads = Reloads(setup(tmp_path))

    async def edit() -> None:
        touch(tmp_path / "templates" / "anchor" / "default.j2", "{ }", 1)

    await run_for(0.6, reloads, interval=0.02, between=edit)
    assert reloads.calls == 1


async def test_a_rejected_change_is_not_retried_at_every_look(tmp_path: Path) -> None:
    reloads = Reloads(setup(tmp_path), reject=True)

    async def edit() -> None:
        touch(tmp_path / "relay.yaml", CONFIG + "bogus: 1\n", 1)

    await run_for(0.6, reloads, interval=0.02, between=edit)
    assert reloads.calls == 1


async def test_watching_off_never_reloads(tmp_path: Path) -> None:
    reloads = Reloads(setup(tmp_path))

    async def edit() -> None:
        touch(tmp_path / "relay.yaml", CONFIG + "# edited\n", 1)

    await run_for(0.4, reloads, interval=None, between=edit)
    assert reloads.calls == 0


async def test_a_file_seen_half_written_is_reloaded_once_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what the looks see: the tree as it was, the config truncated by its writer, then whole
    reloads = Reloads(setup(tmp_path))
    before, truncated, whole = (((str(tmp_path / "relay.yaml"), n, n),) for n in (1, 2, 3))
    looks = iter([before, before, truncated, whole])
    monkeypatch.setattr(watch_module, "fingerprint", lambda _loaded: next(looks, whole))
    await run_for(0.6, reloads, interval=0.02)
    assert reloads.calls == 1
