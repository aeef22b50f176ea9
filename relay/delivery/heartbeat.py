"""This process's heartbeat in a store shared by replicas, and the self-fence that goes with it.

Replicas on PostgreSQL release the claims of a replica whose heartbeat is stale instead of
waiting for the claims' lease (`store.lease`, 60 s), so a dead replica stalls its channels for
seconds. Releasing a claim lets another replica send the message again; that must never happen
while the claim's owner may still be sending it. The argument, with the numbers below:

- Every `RENEW_EVERY` seconds, on a connection of its own and independently of any send, this
  process writes the database's clock into its `replicas` row (`Store.beat`). The value written
  is read by the database after the renewal started, so it is never earlier than that start.
- Another replica releases this one's claims only once that value is older than `STALE_AFTER`
  (`relay.store.interface`)
  by the database's clock (the same clock on both sides: skew between the replicas' clocks plays
  no part), while holding the `replicas` row so that no renewal lands in between.
- This process sends only while its last successful renewal started less than `FENCE_AFTER`
  ago by its own monotonic clock (`alive`). A send in flight is bounded by the same deadline
  (`bound`): when no renewal succeeds in time (the database is unreachable, or the event loop
  was starved), the send is cancelled and its socket closed, and no new one starts. The
  deadline moves forward with every successful renewal, so a live process's send runs as long
  as Slack takes, up to `slack.timeout`; only the lease (longer than that) ends a live claim.
- So by the time another replica may release a claim, at least `STALE_AFTER - FENCE_AFTER`
  seconds have passed since this process stopped sending anything: it has no send in flight,
  exactly like a process that was killed (whose sockets are gone). What Slack took before the
  fence may be posted again: the documented at-least-once window of a crash.
- Recording an outcome only touches a row this process still holds (`Recording.LOST`
  otherwise), so a late answer never overwrites a claim another replica has taken over.

What no heartbeat can tell apart: a process frozen as a whole for longer than `STALE_AFTER`
(SIGSTOP, a paused VM, an event loop blocked that long) looks dead; if it resumes in the middle
of writing a request to Slack, that one message may be posted twice (as with the lease, only
sooner: the lease tolerated a freeze up to `store.lease`).

The numbers: a renewal every second; fenced after 3 s without a successful one (two renewals
missed, so one slow round trip fences nothing); presumed dead after 5 s, which leaves 2 s for
the fenced process to cancel its sends. A dead replica's channels resume within about
`STALE_AFTER` plus the one-second period at which replicas look for stale claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from typing import Protocol

log = logging.getLogger("relay.heartbeat")

RENEW_EVERY = 1.0
FENCE_AFTER = 3.0


class Beats(Protocol):
    async def beat(self) -> None: ...


class Heartbeat:
    """Renews this process's heartbeat and says whether it may send (`alive`); tests shorten
    the periods."""

    def __init__(
        self,
        store: Beats,
        *,
        renew_every: float = RENEW_EVERY,
        fence_after: float = FENCE_AFTER,
    ) -> None:
        self.store = store
        self.renew_every = renew_every
        self.fence_after = fence_after
        # loop time until which sends may run; none before the first successful renewal
        self._deadline = -math.inf
        self._bounds: set[asyncio.Timeout] = set()
        self._failing = False

    def alive(self) -> bool:
        """True while the last successful renewal started less than `fence_after` ago."""
        return asyncio.get_running_loop().time() < self._deadline

    async def renew(self) -> bool:
        """One renewal; on success every send in flight may run `fence_after` from its start."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            # a renewal that ends after fence_after could extend nothing: give up on it then
            await asyncio.wait_for(self.store.beat(), self.fence_after)
        except Exception as exc:  # the class only: a driver's message may hold the URL
            if not self._failing:
                log.warning(
                    "heartbeat not renewed; this replica stops sending if it stays so for %gs",
                    self.fence_after,
                    extra={"detail": type(exc).__name__},
                )
            self._failing = True
            return False
        if self._failing:
            log.info("heartbeat renewed again")
        self._failing = False
        self._deadline = max(self._deadline, started + self.fence_after)
        for bound in self._bounds:
            if not bound.expired():
                bound.reschedule(self._deadline)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Renew every `renew_every` seconds until `stop`."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            await self.renew()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), timeout=max(0.0, started + self.renew_every - loop.time())
                )

    @contextlib.asynccontextmanager
    async def bound(self) -> AsyncIterator[None]:
        """Run a send within the fence: it is cancelled (TimeoutError) once `alive` turns
        false, unless a renewal succeeds before."""
        async with asyncio.timeout_at(self._deadline) as bound:
            self._bounds.add(bound)
            try:
                yield
            finally:
                self._bounds.discard(bound)


@contextlib.asynccontextmanager
async def beating(heartbeat: Heartbeat | None) -> AsyncIterator[None]:
    """Keep `heartbeat` renewed (if there is one) for the duration: renewed once before the
    worker's first claim, then in the background until the block ends. The block must end
    after the worker has drained: the sends that drain at shutdown still need it."""
    if heartbeat is None:
        yield
        return
    await heartbeat.renew()
    stop = asyncio.Event()
    renewing = asyncio.create_task(heartbeat.run(stop), name="relay-heartbeat")
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(renewing, return_exceptions=True)
