"""The running relay: its config in force, store, router and worker, how a reload swaps a new
config in, and the background work that runs while it serves.

`Services` is built by the server (or a test) and handed to the HTTP edge, which only calls it:
accept events through `pipeline`, answer from `runtime` and `store`, `reload()`. `running()` is
the lifetime of the process: it opens the store, starts the router, the delivery worker, the
pruner and the file watcher, and on shutdown stops intake and lets in-flight deliveries finish
up to a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from relay import heap
from relay.assembly import http_client
from relay.config import LoadedConfig, load_config, secret_values
from relay.delivery.heartbeat import Heartbeat, beating
from relay.delivery.policy import Pacing, RetryPolicy, settings
from relay.delivery.senders import Sender
from relay.errors import ConfigError
from relay.logs import protect
from relay.metrics import UNKNOWN_SOURCE, Metrics
from relay.ops import history
from relay.ops.watch import watch
from relay.pipeline import Pipeline
from relay.runtime import Runtime
from relay.store import Store

log = logging.getLogger("relay.service")

PRUNE_EVERY = 600.0  # seconds between two passes of the pruner

# builds the runtime and the senders of a newly loaded config (the server's assembly)
Rebuild = Callable[[LoadedConfig], tuple[Runtime, dict[str, Sender]]]


class Delivery(Protocol):
    """The delivery worker as the services drive it: `relay.delivery.worker.Worker` in this
    process, or `relay.delivery.process.DeliveryProcess` for one in a process of its own."""

    metrics: Metrics
    heartbeat: Heartbeat | None

    def wake(self) -> None: ...
    def paced(self) -> bool: ...
    def reloaded(
        self,
        loaded: LoadedConfig,
        senders: Mapping[str, Sender],
        pacing: Pacing,
        retry: RetryPolicy,
    ) -> None: ...
    async def run(self, stop: asyncio.Event) -> None: ...
    async def drain(self, timeout: float) -> bool: ...


@dataclass
class Services:
    """Everything a running relay is made of, and what changes while it runs."""

    runtime: Runtime
    store: Store
    worker: Delivery
    admin_token: str | None = None
    clock: Callable[[], float] = time.time
    shutdown_grace: float = 20.0
    # for the Tabstack runs relay starts itself and the chats reached over plain HTTP
    http: httpx.AsyncClient | None = None
    owns_http: bool = False  # closed at shutdown (made here when none was given)
    # what else to close at shutdown, last (the clients' connection pools)
    closing: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    rebuild: Rebuild | None = None
    metrics: Metrics = field(default_factory=Metrics)
    pipeline: Pipeline = field(init=False)
    runs: set[asyncio.Task[Any]] = field(default_factory=set)  # streams being consumed
    accepting: bool = True
    generation: int = 1

    def __post_init__(self) -> None:
        self.worker.metrics = self.metrics
        self.pipeline = Pipeline(
            self.runtime,
            self.store,
            clock=self.clock,
            on_enqueued=self.worker.wake,
            metrics=self.metrics,
        )
        self.metrics.generation.set(self.generation)
        self._reloading = asyncio.Lock()
        self.pipeline.on_settled = self.settle
        self.pipeline.paced = self.worker.paced

    def settle(self) -> None:
        """Compile the templates in force and take every live object out of the collector's
        full passes (at start-up, and once a reload's old config is no longer needed)."""
        self.runtime.renderer.warm()
        heap.settle()

    def source_label(self, name: str) -> str:
        """The `source` label of a request to `/hooks/{name}`: the name, or `_unknown`."""
        return name if name in self.runtime.providers else UNKNOWN_SOURCE

    def head_refused(self, path: str) -> None:
        """Count a request refused for its oversized head (by the app or the protocol)."""
        if path.startswith("/hooks/"):
            label = self.source_label(path.removeprefix("/hooks/"))
            self.metrics.received.labels(label).inc()
            self.metrics.rejected.labels(label, "headers_too_large").inc()

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a background task (a stream being consumed, a reload) until it ends; shutdown
        cancels what is left."""
        self.runs.add(task)
        task.add_done_callback(self.runs.discard)

    async def reload(self) -> None:
        """Load the config file and templates again and swap them in atomically.

        Raises ConfigError (the old config keeps serving) when the new one is invalid; logs its
        public form."""
        async with self._reloading:
            path = self.runtime.loaded.path
            try:
                loaded = await asyncio.to_thread(load_config, path)
                protect(secret_values(loaded.config))
                if self.rebuild is None:
                    raise ConfigError(["reload is not available in this process"])
                runtime, senders = await asyncio.to_thread(self.rebuild, loaded)
                accepted_until = await self.store.last_seq()
            except Exception as exc:  # never half-applied, never a 500: the old one serves
                rejected = exc if isinstance(exc, ConfigError) else ConfigError(
                    # the class only: an exception's message may quote what it failed on
                    [f"{path}: the new config cannot be used ({type(exc).__name__}); "
                     "`relay check` shows why"]
                )  # fmt: skip
                self.metrics.reloads.labels("rejected").inc()
                log.error(
                    "new config rejected; the previous one keeps serving",
                    # the public form: a value typed into the wrong field may be a secret
                    extra={"problems": rejected.public, "config": self.runtime.digest},
                )
                raise rejected from None
            heap.unsettle()  # the old config can go once no waiting event needs it
            self.runtime = runtime
            self.pipeline.use(runtime, accepted_until)
            self.worker.reloaded(loaded, senders, *settings(runtime.config, runtime.paces))
            self.generation += 1
            self.metrics.generation.set(self.generation)
            self.metrics.reloads.labels("ok").inc()
            log.info(
                "config reloaded",
                extra={"generation": self.generation, "config": runtime.digest},
            )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The lifetime of a serving relay: background work starts, and stops in order."""
        await self.store.open()
        released = await self.store.release_orphans(self.clock())
        if released:
            log.warning(
                "re-queued deliveries interrupted by the last shutdown", extra={"count": released}
            )
        if self.http is None:
            self.http = http_client()
            self.owns_http = True
        self._on_sighup()
        self.settle()
        try:
            # the heartbeat outlives the worker: the sends that drain at shutdown still need it
            async with beating(self.worker.heartbeat), self._background():
                yield
        finally:
            if self.owns_http and self.http is not None:
                await self.http.aclose()
            for close in self.closing:
                with contextlib.suppress(Exception):  # closing is best effort at exit
                    await close()
            await self.store.close()

    @contextlib.asynccontextmanager
    async def _background(self) -> AsyncIterator[None]:
        """The router, the worker, the pruner and the file watcher, for the duration; then
        intake stops and in-flight deliveries drain (up to `shutdown_grace`)."""
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(self.pipeline.run(stop), name="relay-router"),
            asyncio.create_task(self.worker.run(stop), name="relay-worker"),
            asyncio.create_task(self._prune_forever(stop), name="relay-pruner"),
            asyncio.create_task(
                watch(
                    lambda: self.runtime.loaded,
                    lambda: self.runtime.config.server.watch,
                    self.reload,
                    stop,
                ),
                name="relay-watcher",
            ),
        ]
        try:
            yield
        finally:
            self.accepting = False
            for run in list(self.runs):
                run.cancel()
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not await self.worker.drain(self.shutdown_grace):
                log.warning(
                    "shutdown deadline reached with deliveries in flight; they will be retried"
                )

    def _on_sighup(self) -> None:
        """SIGHUP reloads the config, like POST /admin/reload (where signals can be caught)."""

        async def reload() -> None:
            with contextlib.suppress(ConfigError):  # logged; the old config keeps serving
                await self.reload()

        def handler() -> None:
            self.keep(asyncio.ensure_future(reload()))

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, handler)

    async def _prune_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            store_cfg = self.runtime.config.store
            try:
                await self.store.prune(
                    self.clock(), store_cfg.dedup_ttl, keep_sent=store_cfg.dedup_ttl
                )
                # history in bounded steps, each its own short transaction
                await history.prune(self.store, self.clock() - store_cfg.history, stop=stop)
            except Exception:
                log.exception("pruning the store failed; will try again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=PRUNE_EVERY)
