"""The delivery worker in a process of its own (`RELAY_DELIVERY_PROCESS=on`).

One Python process runs Python on one core at a time. With the worker beside intake and the
router, relay delivers what one core allows (bench/e2e.py: the event loop at 100% while the
machine's second core idles); in a child process of its own the worker claims, sends and
settles on the other core while the parent accepts and routes, both on the same database.

`DeliveryProcess` stands in the parent where the `Worker` would (`relay.ops.services` calls the
same methods: `wake`, `paced`, `reloaded`, `run`, `drain`) and supervises the child:
- the child builds its worker from the config the parent loaded (and each config the parent
  reloads, sent whole: both always run the same one), opens the store and frees the claims a
  previous child left (`release_orphans`), then claims and sends as the in-process worker does;
- the parent's router wakes it through a socket of its own (a byte per batch enqueued; a full
  buffer already holds a wake, so a write that would block is dropped); everything else goes
  over a control socket, as length-prefixed pickles read and written by asyncio streams (the
  event loop makes both sockets non-blocking: a message may arrive in parts);
- the child reports whether its channels are held back by their pacing (the router's flow
  control reads it) and its delivery metrics, whose families the parent's `/metrics` shows;
- at shutdown the parent asks the child to finish its sends within the grace period; a child
  that exits otherwise is logged and started again (its claims go back to pending), and a
  child whose parent is gone (its control pipe closed) finishes its sends and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import signal
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from relay.config import LoadedConfig
from relay.delivery.heartbeat import Heartbeat, beating
from relay.delivery.policy import Pacing, RetryPolicy
from relay.delivery.senders import Sender
from relay.delivery.worker import Worker
from relay.metrics import Metrics

log = logging.getLogger("relay.delivery")

REPORT_SECONDS = 0.5  # how often the child reports its pacing state and its metrics
RESTART_SECONDS = (1.0, 30.0)  # the wait before starting a child again: first, at most
STOP_MARGIN = 5.0  # seconds past the grace period before a child that does not exit is killed
GONE_GRACE = 10.0  # seconds a child whose parent is gone gives its sends in flight


class Deliveries(Protocol):
    """What the child runs (relay.assembly builds it): a worker, and how it takes a reloaded
    config."""

    worker: Worker

    def reload(self, loaded: LoadedConfig) -> None: ...
    async def close(self) -> None: ...  # the senders' clients


# builds the child's deliveries from the config and the environment (relay.assembly)
Build = Callable[[LoadedConfig, dict[str, str], Path], Deliveries]


@dataclass(frozen=True, slots=True)
class Child:
    """What a child is started with (pickled by multiprocessing's spawn)."""

    loaded: LoadedConfig
    env: dict[str, str]
    cwd: Path  # where a relative database path is resolved from
    log_level: str
    secrets: tuple[str, ...]
    build: Build


class _Reported(Collector):
    """The child's delivery metric families as it last reported them (empty before that)."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


class DeliveryProcess:
    """The parent's side: starts, feeds and supervises the delivery child."""

    heartbeat: Heartbeat | None = None  # the child keeps its own (replicas on PostgreSQL)

    def __init__(self, child: Child) -> None:
        self._child = child
        self.metrics = Metrics()  # the services give theirs: the child's figures show there
        self._reported: _Reported | None = None
        self._paced = False
        self._process: Any = None  # multiprocessing's SpawnProcess
        self._control: asyncio.StreamWriter | None = None
        self._wakes: socket.socket | None = None
        self._listening: asyncio.Task[None] | None = None
        self._drained: asyncio.Future[bool] | None = None

    # ------------------------------------------------------------ what the services call

    def wake(self) -> None:
        """Messages were enqueued: the child looks now rather than at its next poll."""
        if self._wakes is not None:
            # a full buffer holds wakes the child has yet to read: this one adds nothing
            with contextlib.suppress(BlockingIOError, ConnectionError):
                self._wakes.send(b"w")

    def paced(self) -> bool:
        return self._paced

    def reloaded(
        self,
        loaded: LoadedConfig,
        senders: Mapping[str, Sender],
        pacing: Pacing,
        retry: RetryPolicy,
    ) -> None:
        """A config was reloaded: the child builds its own senders, pacing and retry policy
        from it (the parent's are not used), and a child started later starts with it."""
        self._child = replace(self._child, loaded=loaded)
        self._send(("config", loaded))

    async def run(self, stop: asyncio.Event) -> None:
        """Keep a child running until `stop` (`drain` then ends it); one that exits meanwhile
        is started again, after a pause that doubles while it keeps exiting."""
        if self._reported is None:
            self._reported = _Reported()
            self.metrics.delegate_deliveries(self._reported)
        pause = RESTART_SECONDS[0]
        while not stop.is_set():
            started = time.monotonic()
            listening = await self._start()
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([stopping, listening], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if stop.is_set():
                return
            code = await self._end()
            log.error(
                "delivery process exited; starting it again (its claims go back to pending)",
                extra={"exit_code": code, "restart_in": pause},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            ran = time.monotonic() - started
            pause = RESTART_SECONDS[0] if ran > RESTART_SECONDS[1] else min(
                pause * 2, RESTART_SECONDS[1]
            )

    async def drain(self, timeout: float) -> bool:
        """Ask the child to finish its sends within `timeout`, and wait for it to exit; True
        if no send was left."""
        if self._process is None:
            return True
        drained = False
        if self._listening is not None and not self._listening.done():
            self._drained = asyncio.get_running_loop().create_future()
            self._send(("stop", timeout))
            with contextlib.suppress(TimeoutError):
                drained = await asyncio.wait_for(self._drained, timeout + STOP_MARGIN)
        await self._end()
        return drained

    # ------------------------------------------------------------ the child and its sockets

    async def _start(self) -> asyncio.Task[None]:
        context = multiprocessing.get_context("spawn")
        control, control_theirs = socket.socketpair()
        wakes, wakes_theirs = socket.socketpair()
        self._process = context.Process(
            target=child_main,
            args=(self._child, control_theirs, wakes_theirs),
            name="relay-delivery",
            daemon=True,  # ends with the parent's interpreter, whatever happens
        )
        self._process.start()
        control_theirs.close()
        wakes_theirs.close()
        wakes.setblocking(False)
        reader, self._control = await asyncio.open_connection(sock=control)
        self._wakes = wakes
        self._listening = asyncio.create_task(self._listen(reader), name="relay-delivery-reports")
        return self._listening

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        """Take the child's reports until its socket closes (it has exited)."""
        while (message := await _read(reader)) is not None:
            if message[0] == "report":
                _kind, self._paced, families = message
                if self._reported is not None:
                    self._reported.families = families
            elif message[0] == "drained" and self._drained and not self._drained.done():
                self._drained.set_result(bool(message[1]))

    async def _end(self) -> int | None:
        """Wait for the child to exit (kill it if it does not) and close its sockets; its exit
        code."""
        process, loop = self._process, asyncio.get_running_loop()
        await loop.run_in_executor(None, process.join, STOP_MARGIN)
        if process.is_alive():
            log.error("delivery process did not stop in time: killed")
            process.kill()
            await loop.run_in_executor(None, process.join, STOP_MARGIN)
        if self._listening is not None:
            self._listening.cancel()
            await asyncio.gather(self._listening, return_exceptions=True)
        if self._control is not None:
            self._control.close()
        if self._wakes is not None:
            self._wakes.close()
        self._control = self._wakes = self._listening = None
        return int(process.exitcode) if process.exitcode is not None else None

    def _send(self, message: tuple[Any, ...]) -> None:
        if self._control is not None and not self._control.is_closing():
            _write(self._control, message)


async def _read(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None once the other side has closed its socket."""
    try:
        size = int.from_bytes(await reader.readexactly(4), "big")
        message: tuple[Any, ...] = pickle.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return message


def _write(writer: asyncio.StreamWriter, message: tuple[Any, ...]) -> None:
    """Queue a message (the stream writes it as the socket takes it: this never blocks)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(len(data).to_bytes(4, "big") + data)


# ---------------------------------------------------------------- the child


def child_main(child: Child, control: socket.socket, wakes: socket.socket) -> None:
    """The child process: deliver until the parent says stop or goes away."""
    from relay.logs import protect, setup_logging

    # the parent decides when the child stops (Ctrl-C reaches the whole process group)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    setup_logging(child.log_level)
    protect(child.secrets)
    # the event loop `relay serve` runs on (uvicorn's choice): uvloop where it is installed
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_deliver(child, control, wakes))


async def _deliver(child: Child, control_socket: socket.socket, wakes: socket.socket) -> None:
    from relay.config import secret_values
    from relay.logs import protect

    deliveries = child.build(child.loaded, child.env, child.cwd)
    worker = deliveries.worker
    store = worker.store
    await store.open()
    released = await store.release_orphans(time.time())
    if released:
        log.warning("re-queued deliveries a previous run left in flight", extra={"count": released})
    reader, control = await asyncio.open_connection(sock=control_socket)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    grace = [GONE_GRACE]

    def on_wake() -> None:
        with contextlib.suppress(BlockingIOError):
            while wakes.recv(4096):
                pass
        worker.wake()

    async def listen() -> None:
        while (message := await _read(reader)) is not None:
            kind, value = message
            if kind == "config":
                protect(secret_values(value.config))
                try:
                    deliveries.reload(value)
                except Exception:  # the parent took it: keep the previous one, say why
                    log.exception("delivery process could not apply the reloaded config")
            elif kind == "stop":
                grace[0] = float(value)
                stop.set()
                return
        stop.set()  # the parent is gone: finish what is in flight, then exit

    wakes.setblocking(False)
    loop.add_reader(wakes.fileno(), on_wake)
    listening = asyncio.create_task(listen(), name="relay-delivery-control")
    async with beating(worker.heartbeat):  # the draining sends still need it
        reporting = asyncio.create_task(_report(worker, control, stop), name="relay-report")
        await worker.run(stop)
        drained = await worker.drain(grace[0])
        await asyncio.gather(reporting, return_exceptions=True)
    _write(control, ("report", worker.paced(), worker.metrics.delivery_families()))
    _write(control, ("drained", drained))
    with contextlib.suppress(ConnectionError):  # the parent may be gone
        await control.drain()
    listening.cancel()
    await deliveries.close()
    await store.close()
    control.close()


async def _report(worker: Worker, control: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    """Every `REPORT_SECONDS`: whether the channels are paced, and the delivery metrics."""
    while not stop.is_set():
        _write(control, ("report", worker.paced(), worker.metrics.delivery_families()))
        with contextlib.suppress(ConnectionError):
            await control.drain()  # a parent slow to read slows the reports, nothing else
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REPORT_SECONDS)
