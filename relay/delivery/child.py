"""The delivery process's own side: `python -m relay.delivery.child CONTROL_FD WAKES_FD`.

relay.delivery.process starts it as a new interpreter given the two sockets' descriptors; the
first message on the control socket is its `Child` (the config, the environment, how to build
its deliveries). A new interpreter rather than multiprocessing's spawn: spawn imports the
parent's main module again (for `relay serve`, the whole server: HTTP, console, templates) and
starts a resource tracker process beside it (13 MB); this one imports what delivering needs
alone (bench/e2e.py: its peak RSS went from 87 to 67-80 MB).
"""

from __future__ import annotations

import signal

# the parent decides when the child stops (Ctrl-C reaches the whole process group): ignored
# before the imports below, which take a while
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

from relay import heap  # noqa: E402
from relay.config import secret_values  # noqa: E402
from relay.delivery.heartbeat import beating  # noqa: E402
from relay.delivery.process import (  # noqa: E402
    GONE_GRACE,
    REPORT_SECONDS,
    Child,
    read_message,
    write_message,
)
from relay.delivery.worker import Worker  # noqa: E402
from relay.logs import protect, setup_logging  # noqa: E402

log = logging.getLogger("relay.delivery")


def main(argv: list[str]) -> None:
    """Deliver until the parent says stop or goes away."""
    control = socket.socket(fileno=int(argv[0]))
    wakes = socket.socket(fileno=int(argv[1]))
    # the event loop `relay serve` runs on (uvicorn's choice): uvloop where it is installed
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    # until the parent says which level it runs at: a child that fails before that (a store it
    # cannot open, say) still says why in a JSON line, not a bare traceback
    setup_logging("WARNING")
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_deliver(control, wakes))
    except Exception:  # the parent logs the exit and starts another child
        log.exception("delivery process failed")
        sys.exit(1)


async def _deliver(control_socket: socket.socket, wakes: socket.socket) -> None:
    reader, control = await asyncio.open_connection(sock=control_socket)
    first = await read_message(reader)
    if first is None or first[0] != "start":
        return  # the parent went away before it said what to run
    child: Child = first[1]
    setup_logging(child.log_level)
    protect(child.secrets)
    deliveries = child.build(child.loaded, child.env, child.cwd)
    worker = deliveries.worker
    store = worker.store
    await store.open()
    released = await store.release_orphans(time.time())
    if released:
        log.warning("re-queued deliveries a previous run left in flight", extra={"count": released})
    heap.settle()  # the config, clients and modules: out of the full collections from now on
    settling: set[asyncio.Task[None]] = set()  # held until done (the loop keeps weak references)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    grace = [GONE_GRACE]

    def on_wake() -> None:
        with contextlib.suppress(BlockingIOError):
            while wakes.recv(4096):
                pass
        worker.wake()

    async def listen() -> None:
        while (message := await read_message(reader)) is not None:
            kind, value = message
            if kind == "config":
                protect(secret_values(value.config))
                heap.unsettle()  # the old senders can go once the sends that use them end
                try:
                    deliveries.reload(value)
                except Exception:  # the parent took it: keep the previous one, say why
                    log.exception("delivery process could not apply the reloaded config")
                task = asyncio.create_task(_settle_after(worker.in_flight()))
                settling.add(task)
                task.add_done_callback(settling.discard)
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
    write_message(control, ("report", worker.paced(), worker.metrics.delivery_families()))
    write_message(control, ("drained", drained))
    with contextlib.suppress(ConnectionError):  # the parent may be gone
        await control.drain()
    listening.cancel()
    await deliveries.close()
    await store.close()
    control.close()


async def _settle_after(sends: list[asyncio.Task[None]]) -> None:
    """Settle the heap again once the sends started before a reload are over."""
    if sends:
        await asyncio.wait(sends)
    heap.settle()


async def _report(worker: Worker, control: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    """Every `REPORT_SECONDS`: whether the channels are paced, and the delivery metrics."""
    while not stop.is_set():
        write_message(control, ("report", worker.paced(), worker.metrics.delivery_families()))
        with contextlib.suppress(ConnectionError):
            await control.drain()  # a parent slow to read slows the reports, nothing else
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REPORT_SECONDS)


if __name__ == "__main__":
    main(sys.argv[1:])
