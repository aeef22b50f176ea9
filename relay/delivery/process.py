"""The delivery worker in a process of its own (`RELAY_DELIVERY_PROCESS=on`).

One Python process runs Python on one core at a time. With the worker beside intake and the
router, relay delivers what one core allows (bench/e2e.py: the event loop at 100% while the
machine's second core idles); in a child process of its own the worker claims, sends and
settles on the other core while the parent accepts and routes, both on the same database.

`DeliveryProcess` stands in the parent where the `Worker` would (`relay.ops.services` calls the
same methods: `wake`, `paced`, `reloaded`, `run`, `drain`) and supervises the child:
- the child, a new interpreter running relay.delivery.child, builds its worker from the config
  the parent loaded (and each config the parent reloads, sent whole: both always run the same
  one), opens the store and frees the claims a previous child left (`release_orphans`), then
  claims and sends as the in-process worker does;
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
import pickle
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from relay.config import LoadedConfig
from relay.delivery.heartbeat import Heartbeat
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
    """What a child is started with (the first message it reads)."""

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
        self._process: asyncio.subprocess.Process | None = None
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
            pause = (
                RESTART_SECONDS[0]
                if ran > RESTART_SECONDS[1]
                else min(pause * 2, RESTART_SECONDS[1])
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
        control, control_theirs = socket.socketpair()
        wakes, wakes_theirs = socket.socketpair()
        # a new interpreter, given its ends of the sockets (relay.delivery.child says why not
        # multiprocessing); it inherits the environment, stdout and stderr
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relay.delivery.child",
            str(control_theirs.fileno()),
            str(wakes_theirs.fileno()),
            pass_fds=(control_theirs.fileno(), wakes_theirs.fileno()),
            stdin=asyncio.subprocess.DEVNULL,
        )
        control_theirs.close()
        wakes_theirs.close()
        wakes.setblocking(False)
        reader, self._control = await asyncio.open_connection(sock=control)
        self._wakes = wakes
        self._send(("start", self._child))
        self._listening = asyncio.create_task(self._listen(reader), name="relay-delivery-reports")
        return self._listening

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        """Take the child's reports until its socket closes (it has exited)."""
        while (message := await read_message(reader)) is not None:
            if message[0] == "report":
                _kind, self._paced, families = message
                if self._reported is not None:
                    self._reported.families = families
            elif message[0] == "drained" and self._drained and not self._drained.done():
                self._drained.set_result(bool(message[1]))

    async def _end(self) -> int | None:
        """Wait for the child to exit (kill it if it does not) and close its sockets; its exit
        code."""
        process = self._process
        assert process is not None  # started by `_start`
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), STOP_MARGIN)
        if process.returncode is None:
            log.error("delivery process did not stop in time: killed")
            process.kill()
            await process.wait()
        if self._listening is not None:
            self._listening.cancel()
            await asyncio.gather(self._listening, return_exceptions=True)
        if self._control is not None:
            self._control.close()
        if self._wakes is not None:
            self._wakes.close()
        self._control = self._wakes = self._listening = None
        return process.returncode

    def _send(self, message: tuple[Any, ...]) -> None:
        if self._control is not None and not self._control.is_closing():
            write_message(self._control, message)


async def read_message(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None once the other side has closed its socket."""
    try:
        size = int.from_bytes(await reader.readexactly(4), "big")
        message: tuple[Any, ...] = pickle.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return message


def write_message(writer: asyncio.StreamWriter, message: tuple[Any, ...]) -> None:
    """Queue a message (the stream writes it as the socket takes it: this never blocks)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(len(data).to_bytes(4, "big") + data)
