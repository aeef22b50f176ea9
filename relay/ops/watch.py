"""Watching the config file and the templates folder: a change reloads relay like SIGHUP does.

Off unless `server.watch` sets an interval. Polling, not inotify: it works on every volume
(network mounts, Kubernetes ConfigMaps swapped by symlink) and costs a few `stat` calls per
interval. A change is reloaded once the files have stayed the same for one interval, so a
file being written (truncated, then filled) is read when it is whole, once; a file that is
still invalid is rejected like any invalid config (the old one keeps serving) and reloaded
once it changes again; a change is tried once, not at every poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from relay.config import LoadedConfig
from relay.errors import ConfigError
from relay.runtime import template_files

log = logging.getLogger("relay.watch")

Fingerprint = tuple[tuple[str, int, int], ...]
IDLE_LOOK = 5.0  # with watching off, how often to look whether a reload turned it on


def fingerprint(loaded: LoadedConfig) -> Fingerprint:
    """(path, mtime ns, size) of the config file and of every file of the templates folder."""
    seen: list[tuple[str, int, int]] = []
    for path in [loaded.path, *template_files(loaded)]:
        try:
            stat = Path(path).stat()
        except OSError:
            seen.append((str(path), -1, -1))  # gone: a change too
            continue
        seen.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(seen)


async def watch(
    current: Callable[[], LoadedConfig],
    interval: Callable[[], float | None],
    reload: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
) -> None:
    """Until `stop`: every `interval()` seconds, `reload()` if the files of `current()` changed."""
    last = await asyncio.to_thread(fingerprint, current())
    pending = last  # what the previous look saw
    while not stop.is_set():
        every = interval()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every or IDLE_LOOK)
        if stop.is_set() or every is None:
            continue
        try:
            now = await asyncio.to_thread(fingerprint, current())
            settled, pending = now == pending, now
            if now == last or not settled:  # unchanged, or still changing: look again
                continue
            log.info("config or templates changed on disk: reloading")
            folder = current().templates_dir
            with contextlib.suppress(ConfigError):  # logged; the old config keeps serving
                await reload()
            # `now` was tried, whatever the outcome: only a later edit is a change (an edit
            # made during the reload shows as one, and is reloaded again: harmless)
            last = now
            if current().templates_dir != folder:  # the new config reads another folder
                last = pending = await asyncio.to_thread(fingerprint, current())
        except Exception:
            log.exception("watching the config failed; will look again")
