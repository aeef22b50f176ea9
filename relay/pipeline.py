"""The pipeline: the one place that knows the order of the stages.

    acknowledgement path:  verify -> parse (providers) -> persist + dedup (store) -> 202
    router, in the background:  route (routing) -> render (render) -> conversation steps,
                                digests and quiet hours (conversation) -> outbox (store)
    worker, on its own schedule:  deliver (delivery: pacing, senders, retries)

`Pipeline.accept` writes the verified event and its id to the store, nothing more, so relay
answers a sender within milliseconds even in a burst. `Pipeline.run` then takes the waiting
events in the order they were accepted, routes and renders them, and writes the rendered
messages to the outbox in the same transaction that takes the events out of the inbox: a retry
resends exactly the same message and a template edit never changes what is already queued.
Events accepted before a reload are rendered with the config they were accepted under.

Flow control, so that an event waits seconds at most while relay keeps up, and the
acknowledgement stays fast while it cannot:
- the router renders in step with intake (one event per turn of the event loop, the requests
  that are ready answered in between), so a steady stream is routed as it comes;
- once `HOLD` events and messages wait (events to route, and messages that could be sent now:
  a chat that is down holds up only its own queue, which waits for its retry) while the
  channels are not held back by their own pacing, relay is the bottleneck: an acknowledgement
  is then held
  (after its event is durable, at most `MAX_HOLD` seconds) until the backlog is below `HOLD`
  again, so a sender posting as fast as relay answers is slowed to the rate relay delivers at
  instead of queueing minutes of delay (bench/e2e.py);
- once `BEHIND` messages wait for their channels' pace, rendering more only lengthens those
  queues: acknowledging comes first then, the router rendering one event per `YIELD_SECONDS`
  while requests wait (a burst towards paced channels is answered at full speed,
  bench/ingest.py, and rendered when it ebbs). A lone event is rendered right after its 202.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from relay.conversation.digest import build as build_digest
from relay.event import Event
from relay.metrics import Metrics
from relay.planning import Planned, plan
from relay.records import Acceptance, Received, Routed
from relay.runtime import Runtime
from relay.silences import SilenceSet
from relay.store import Store
from relay.trace import routing_trace

log = logging.getLogger("relay.pipeline")

BATCH = 32  # events routed per transaction
BURST = 5  # accepts between two renders that make a burst
YIELD_SECONDS = 0.05  # while requests wait: at most one render per this (20 events/s at least)
# Messages waiting for paced channels from which intake goes first: far more than a paced
# channel sends in a while.
BEHIND = 1000
# Events and messages waiting from which, relay behind, acknowledgements are held (see above):
# about a second of what relay delivers on one core; at 1,000 the delay p99 of bench/e2e.py was
# 3.5-3.9 s, at 400 1.6-2.0 s, at the same delivered rate.
HOLD = 400
MAX_HOLD = 2.0  # seconds an acknowledgement is held at most (senders time out after 10 s+)
LOOK_SECONDS = 0.05  # the backlog is counted at most this often
ROUTING_LEASE = 10.0  # replicas: how long a silent router keeps the others from routing


class Pipeline:
    """Accepts events (the acknowledgement path) and routes them into the outbox (`run`)."""

    def __init__(
        self,
        runtime: Runtime,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        on_enqueued: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
        poll_seconds: float = 1.0,
        yield_seconds: float = YIELD_SECONDS,
        hold: int = HOLD,
        behind: int = BEHIND,
        max_hold: float = MAX_HOLD,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.clock = clock
        self.on_enqueued = on_enqueued
        self.metrics = metrics or Metrics()
        self.poll_seconds = poll_seconds
        self.yield_seconds = yield_seconds
        self.hold, self.behind, self.max_hold = hold, behind, max_hold
        self.holder = uuid.uuid4().hex  # this process, for the routing lease
        # called once no waiting event needs a config older than the current one
        self.on_settled: Callable[[], None] | None = None
        # configs replaced by a reload, each with the newest `seq` accepted under it
        self._eras: list[tuple[int, Runtime]] = []
        self._waiting = 0  # accepts waiting for their commit
        self._accepted = self._accepted_then = 0  # accepts so far; at the last render
        self._last_render = 0.0  # monotonic
        self._behind = False  # BEHIND messages wait for paced channels: intake goes first
        self._flowing = asyncio.Event()  # clear while acknowledgements are held
        self._flowing.set()
        self._looked = -LOOK_SECONDS  # monotonic time of the last count of the backlog
        # whether the channels were held back by their pacing lately (the worker tells)
        self.paced: Callable[[], bool] = lambda: False
        self._wake = asyncio.Event()
        self._stuck: set[int] = set()  # events whose routing failed: kept, skipped until restart

    # ------------------------------------------------------------ acknowledgement path

    async def accept(self, event: Event) -> Acceptance:
        """Persist the event (dedup by id); the router takes it from there."""
        self._waiting += 1  # the router yields while accepts wait (see `_intake_first`)
        try:
            result = await self.store.receive(event, self.clock())
        finally:
            self._waiting -= 1
            self._accepted += 1
        m = self.metrics
        if result is Acceptance.DUPLICATE:
            m.duplicates.labels(event.source).inc()
            log.info("duplicate event ignored", extra=_fields(event))
            return result
        m.count_accepted(event.source, event.type)
        if log.isEnabledFor(logging.INFO):  # its fields are not built for nothing
            log.info("event accepted", extra=_fields(event))
        self._wake.set()
        if not self._flowing.is_set():  # relay is behind: the sender waits, the event is safe
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flowing.wait(), self.max_hold)
        return result

    # ------------------------------------------------------------ router

    def use(self, runtime: Runtime, last_seq: int) -> None:
        """Swap in a reloaded config for events accepted after `last_seq` (`Store.last_seq`
        when the reload took effect); those accepted before are still rendered with the
        config they came under."""
        self._eras.append((last_seq, self.runtime))
        self.runtime = runtime

    def _runtime_for(self, seq: int) -> Runtime:
        for last, runtime in self._eras:
            if seq <= last:
                return runtime
        return self.runtime

    async def run(self, stop: asyncio.Event) -> None:
        """Route waiting events and flush due digests until `stop`: at once when an event is
        accepted here, else every `poll_seconds` (events accepted by other replicas, or left
        by a previous run) or when the next digest is due."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                self._wake.clear()
                timeout = self.poll_seconds
                try:
                    while not stop.is_set() and await self.route_pending(stop):
                        pass
                    if not stop.is_set():
                        timeout = await self.flush_digests()
                except Exception:  # the store is unreachable, say: the events wait in the inbox
                    log.exception("routing failed; will try again")
                    self._flow(behind=False, hold=False)
                if not self._flowing.is_set():  # count again soon: the hold must end in time
                    timeout = min(timeout, LOOK_SECONDS)
                waking = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait(
                    [waking, stopping], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                waking.cancel()
        finally:
            stopping.cancel()
            with contextlib.suppress(Exception):  # else it simply expires
                await self.store.release_routing(self.holder)

    async def flush_digests(self) -> float:
        """Turn every due digest group into its message in the outbox; returns the seconds
        until the next one is due (at most `poll_seconds`)."""
        now = self.clock()
        enqueued = False
        for batch in await self.store.due_digests(now):
            message = build_digest(batch) if batch.items else None
            await self.store.flush_digest(batch, message, now)
            enqueued = enqueued or message is not None
            if message is not None:
                log.info(
                    "digest enqueued",
                    extra={
                        "route": batch.route,
                        "destination": batch.destination,
                        "events": len(batch.items),
                    },
                )
        if enqueued and self.on_enqueued is not None:
            self.on_enqueued()
        due = await self.store.next_digest_at()
        if due is None:
            return self.poll_seconds
        return min(self.poll_seconds, max(0.0, due - self.clock()))

    async def route_pending(self, stop: asyncio.Event | None = None) -> int:
        """Route and render the oldest waiting events into the outbox, one batch in one
        transaction; how many were taken (0: nothing waiting, or another replica routes)."""
        await self._look()
        if not await self.store.lead_routing(self.holder, self.clock(), ROUTING_LEASE):
            return 0
        found = await self.store.inbox(BATCH + len(self._stuck))
        waiting = [r for r in found if r.seq not in self._stuck][:BATCH]
        if not waiting:
            if self._eras:  # everything accepted before a reload is routed
                self._eras.clear()
                if self.on_settled is not None:
                    self.on_settled()
            return 0
        # read per batch, so a silence created or expired through any replica holds from the
        # next batch on; only those still running at the oldest acceptance can matter
        silences = SilenceSet(await self.store.silences(min(r.received_at for r in waiting)))
        planned: list[tuple[Received, Planned]] = []
        for received in waiting:
            await self._intake_first()
            if stop is not None and stop.is_set():
                return 0  # the batch stays in the inbox, whole
            done = self._plan(received, silences)
            if done is not None:
                planned.append((received, done))
        try:
            written = await self.store.enqueue(
                [self._routed_record(r, p) for r, p in planned], self.clock()
            )
        except Exception:
            written = await self._enqueue_each(planned)
        for received, done in planned:
            if received.seq in written:
                self._routed(received.event, done)
        if any(p.messages for r, p in planned if r.seq in written) and self.on_enqueued:
            self.on_enqueued()
        return len(waiting)

    async def _look(self) -> None:
        """Count what waits (at most every `LOOK_SECONDS`) and set the flow control by it."""
        now = time.monotonic()
        if now - self._looked < LOOK_SECONDS:
            return
        self._looked = now
        backlog = await self.store.backlog(self.clock(), max(self.hold, self.behind))
        if self.paced():  # the messages wait for their channels' pace, not for relay
            self._flow(behind=backlog.outbox >= self.behind, hold=False)
        else:
            self._flow(behind=False, hold=backlog.inbox + backlog.outbox >= self.hold)

    def _flow(self, *, behind: bool, hold: bool) -> None:
        self._behind = behind
        if hold:
            self._flowing.clear()
        else:
            self._flowing.set()

    async def _intake_first(self) -> None:
        """Let acknowledgements go first: each render waits for a turn of the event loop, so
        the requests that are ready are answered between two renders. While the channels are
        behind (`BEHIND`), during a burst (an accept waiting for its commit, or more than
        `BURST` accepted since the last render) render only one event per `yield_seconds`."""
        await asyncio.sleep(0)
        if not self._behind:
            self._last_render = time.monotonic()
            self._accepted_then = self._accepted
            return
        wait = self._last_render + self.yield_seconds - time.monotonic()
        if wait > 0 and (self._waiting or self._accepted - self._accepted_then > BURST):
            await asyncio.sleep(wait)
        self._last_render = time.monotonic()
        self._accepted_then = self._accepted

    async def _enqueue_each(self, planned: list[tuple[Received, Planned]]) -> set[int]:
        """The batch's transaction failed: write each event's messages alone, in order, so that
        an event the store refuses holds up neither the others nor the events behind it (it
        stays in the inbox, skipped until restart, like one whose routing failed). If the store
        itself does not answer, the error is raised and the whole batch waits for it."""
        written: set[int] = set()
        for received, done in planned:
            try:
                written |= await self.store.enqueue(
                    [self._routed_record(received, done)], self.clock()
                )
            except Exception:
                if not await self.store.ping():
                    raise
                self._stuck.add(received.seq)
                log.exception(
                    "writing this event's messages failed; it stays in the inbox until relay"
                    " restarts",
                    extra=_fields(received.event),
                )
        return written

    def _routed_record(self, received: Received, done: Planned) -> Routed:
        """What the store writes of a routed event: its messages, and for history their routes
        and the routing trace."""
        runtime = self._runtime_for(received.seq)
        decision = done.decision
        trace = routing_trace(
            runtime, received.event, decision, done.messages, done.routes, done.template_errors
        )
        return Routed(received, done.messages, done.routes, trace)

    def _plan(self, received: Received, silences: SilenceSet) -> Planned | None:
        try:
            runtime = self._runtime_for(received.seq)
            return plan(runtime, received.event, received.received_at, silences)
        except Exception:  # a bug, never the event's fault: keep it, and keep the rest moving
            self._stuck.add(received.seq)
            log.exception(
                "routing this event failed; it stays in the inbox until relay restarts",
                extra=_fields(received.event),
            )
            return None

    def _routed(self, event: Event, planned: Planned) -> None:
        if log.isEnabledFor(logging.INFO) or planned.template_errors:
            self._log_routed(event, planned)
        m = self.metrics
        if planned.decision.dropped_by:
            m.dropped.labels(planned.decision.dropped_by).inc()
        elif not planned.decision.targets:
            m.unrouted.labels(event.source).inc()
        for target in planned.decision.targets:
            m.routed.labels(target.route, target.destination).inc()
            m.rendered.labels(target.destination).inc()
        for error in planned.template_errors:
            m.fallbacks.labels(error.split(":", 1)[0]).inc()
        for message in planned.messages:
            if message.silence is not None:
                m.silenced.labels(message.destination).inc()

    def _log_routed(self, event: Event, planned: Planned) -> None:
        fields = _fields(event)
        for error in planned.template_errors:
            log.error(
                "template failed, sent the safe default message", extra={**fields, "detail": error}
            )
        if planned.decision.dropped_by:
            log.info(
                "event dropped by route", extra={**fields, "route": planned.decision.dropped_by}
            )
        elif not planned.messages and planned.decision.targets:
            log.info("progress event with no message to update: not posted", extra=fields)
        elif not planned.messages:
            log.info("event matched no route", extra=fields)
        elif all(m.silence is not None for m in planned.messages):
            silenced = sorted({m.silence for m in planned.messages if m.silence is not None})
            log.info("event silenced", extra={**fields, "silences": silenced})
        else:
            log.info(
                "event routed",
                extra={**fields, "destinations": [m.destination for m in planned.messages]},
            )
        if log.isEnabledFor(logging.DEBUG):
            _debug_plan(fields, planned)


def _debug_plan(fields: dict[str, Any], planned: Planned) -> None:
    """Why an event goes where it goes: every rule's verdict, then each message's template and
    how it joins its conversation, quiet hours or digest (what to look at when a message does
    not appear)."""
    decision = planned.decision
    log.debug(
        "routing decision",
        extra={
            **fields,
            "rules": [f"{t.route}: {t.verdict}" for t in decision.trace],
            "dropped_by": decision.dropped_by,
            "destinations": [t.destination for t in decision.targets],
        },
    )
    for message, route in zip(planned.messages, planned.routes, strict=True):
        log.debug(
            "message planned",
            extra={
                **fields,
                "destination": message.destination,
                "route": route,
                "template": message.template,
                "conversation": message.step.to_json() if message.step else None,
                "muted": message.muted,
                "silence": message.silence,
                "digest": message.group.key if message.group is not None else None,
            },
        )


def _fields(event: Event) -> dict[str, Any]:
    return {"event_id": event.id, "event_type": event.type, "source": event.source}
