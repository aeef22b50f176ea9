"""The delivery worker: claims due messages, sends them, records what came of each.

Each look claims, in one transaction, the due head of every channel whose pacing allows a
message now (with the conversation messages each needs), and starts one send per claimed
channel: messages to one channel leave one at a time, in the order they were accepted, while
different channels flow in parallel. A send's outcome is decided by pure code
(`relay.conversation.moves`, `relay.delivery.policy`) and recorded by the store, a run's outcomes
a few at a time (`relay.delivery.recorder`) with the other outcomes of the moment. Senders never
sleep: a transient failure is written back with its next attempt time, a permanent one (or one
older than `max_age`) becomes a dead letter carrying the last error.

With a `heartbeat` (replicas on PostgreSQL) the worker claims and sends only while the heartbeat
is alive, and each send runs within its fence (relay.delivery.heartbeat says why that is what
makes another replica's early takeover of a dead replica's claims safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import replace

from relay.config import LoadedConfig
from relay.conversation.memory import Memory
from relay.conversation.moves import Move, MoveKind, effects, move
from relay.delivery import policy
from relay.delivery.heartbeat import Heartbeat
from relay.delivery.policy import Pacing
from relay.delivery.recorder import Recorder
from relay.delivery.senders import Sender
from relay.metrics import Metrics
from relay.records import (
    Claim,
    DeliveryResult,
    OutboxRow,
    Outcome,
    Outgoing,
    Reason,
    Recording,
    Settlement,
    Status,
)
from relay.store import Store

log = logging.getLogger("relay.worker")

# a send's outcome as the store records it: the row, what to write, the chat's answer (None:
# nothing was sent)
Attempted = tuple[OutboxRow, Settlement, DeliveryResult | None]

MAX_SENDS = 64  # sends in flight at once, one per channel
# A claim takes up to RUN consecutive messages of a channel (as far as its pacing allows), sent
# one after another: a busy channel costs one claim transaction per run rather than one per
# message (bench/e2e.py, one destination: see the README's figures).
RUN = 32
# The least time between two looks for due messages: a look's claim costs about the same for
# one channel or all of them (bench/e2e.py, 32 destinations: one claim per message without it).
MIN_LOOK = 0.01
PACED_SECONDS = 5.0  # a claim held back by pacing within this long: the channels are paced


class Worker:
    def __init__(
        self,
        store: Store,
        senders: Mapping[str, Sender],
        *,
        pacing: Pacing | None = None,
        retry: policy.RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        lease_seconds: float = 120.0,
        poll_seconds: float = 1.0,
        metrics: Metrics | None = None,
        heartbeat: Heartbeat | None = None,
        min_look: float = MIN_LOOK,
    ) -> None:
        self.store = store
        self.min_look = min_look
        self.heartbeat = heartbeat
        self._fenced = False
        self.clock = clock
        self.random = random
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.metrics = metrics or Metrics()
        self._senders = dict(senders)
        self._pacing = pacing or Pacing()
        self._retry = retry or policy.RetryPolicy()
        self._wake = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._next_release = 0.0
        self._stopping = False
        self._paced_at = -PACED_SECONDS  # monotonic: when a claim last found a key paced

    def reconfigure(
        self, senders: Mapping[str, Sender], pacing: Pacing, retry: policy.RetryPolicy
    ) -> None:
        """A reloaded config: its destinations, pacing and retry policy apply from the next
        claim on (sends in flight finish with what they started with)."""
        self._senders = dict(senders)
        self._pacing = pacing
        self._retry = retry

    def reloaded(
        self,
        loaded: LoadedConfig,
        senders: Mapping[str, Sender],
        pacing: Pacing,
        retry: policy.RetryPolicy,
    ) -> None:
        """A config was reloaded: `reconfigure` with what was built from it."""
        self.reconfigure(senders, pacing, retry)

    def paced(self) -> bool:
        """Whether a channel was held back by its pacing lately: messages then wait for their
        channel, not for relay (the router's flow control tells the two apart by this)."""
        return time.monotonic() - self._paced_at < PACED_SECONDS

    def in_flight(self) -> list[asyncio.Task[None]]:
        """The runs being sent now (each uses the senders it started with)."""
        return list(self._busy.values())

    def wake(self) -> None:
        """New rows were enqueued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()  # before the look: a wake that comes during it is not lost
            looked = time.monotonic()
            try:
                delay = await self.tick()
            except Exception:  # the store is unreachable, say: the messages wait in it
                log.exception("delivery failed to look for due messages; will try again")
                delay = self.poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    _first(self._wake.wait(), stop.wait()), timeout=max(0.005, delay)
                )
            # looks are at least MIN_LOOK apart, so that the runs which end meanwhile (one per
            # channel) are claimed together, not each in a transaction of its own
            rest = looked + self.min_look - time.monotonic()
            if rest > 0 and not stop.is_set():
                await asyncio.sleep(rest)

    async def tick(self) -> float:
        """Start every send that is due and allowed; returns seconds until the next look."""
        now = self.clock()
        if now >= self._next_release:
            # claims of a worker that died (another replica, or this one before a crash); with
            # replicas, a stale heartbeat tells within seconds, so look as often as it is renewed
            beats = self.heartbeat
            every = beats.renew_every if beats is not None else max(1.0, self.lease_seconds / 4)
            self._next_release = now + every
            released = await self.store.release_expired(now)
            if released:
                log.warning(
                    "re-queued deliveries of a worker presumed dead (stale heartbeat or expired"
                    " lease)",
                    extra={"count": released},
                )
        next_look = self.poll_seconds
        free = MAX_SENDS - len(self._busy)
        if free > 0 and self._may_send():  # fenced: claim nothing until the heartbeat is renewed
            pacing = self._pacing
            found = await self.store.claim(
                now,
                now + self.lease_seconds,
                rate=pacing.rate,
                burst=pacing.burst,
                limit=free,
                busy=frozenset(self._busy),
                paces=pacing.keys,
                run=RUN,
            )
            if found.paced_wait is not None:
                next_look = min(next_look, found.paced_wait)
                self._paced_at = time.monotonic()
            for claim in found.claimed:
                key = claim.row.pace_key
                self._busy[key] = asyncio.create_task(self._deliver(claim, now), name=f"send-{key}")
            due = found.next_due
        else:
            due = await self.store.next_due_at()
        if due is not None and due > now:
            next_look = min(next_look, due - now)
        return next_look

    async def _deliver(self, claim: Claim, claimed_at: float) -> None:
        """Send a claimed run in order. The run stops at the first message that must wait
        (a retry, a rate limit), when another replica took a message over, at shutdown, and
        once half its lease is gone (a long run must not outlive its claim); what it did not
        send goes back to pending."""
        memory = Memory(claim.known)
        recorder: Recorder[Attempted] = Recorder(self._settle_all)
        rows = claim.rows
        sent = 0
        try:
            for row in rows:
                if sent and (self._stopping or self.clock() >= claimed_at + self.lease_seconds / 2):
                    break
                began = time.monotonic()
                decided, result = await self._attempt(row, memory)
                memory.apply(decided.effects, decided.at)
                if not await recorder.add((row, decided, result), time.monotonic() - began):
                    break  # another replica took a message over: the rest is its to send
                sent += 1
                if decided.status is Status.PENDING or decided.pause is not None:
                    break  # the key waits: what follows in the run must not overtake
            await recorder.finish()
            if sent < len(rows):
                await self.store.unclaim([r.id for r in rows[sent:]])
        finally:
            self._busy.pop(claim.row.pace_key, None)
            self._wake.set()

    async def _attempt(
        self, row: OutboxRow, memory: Memory
    ) -> tuple[Settlement, DeliveryResult | None]:
        """Deliver one message: what to record, and the chat's answer (None: nothing sent)."""
        sender = self._senders.get(row.destination)
        if sender is None:
            return policy.gone(row, self.clock()), None
        refs = memory.refs(self.clock())
        planned = move(row, refs, self.clock())
        if planned.kind is MoveKind.SUPERSEDED:
            return policy.superseded(row, self.clock()), None
        if not self._may_send():  # fenced since the claim: the row goes back unsent
            now = self.clock()
            fenced = DeliveryResult(Outcome.RETRY, Reason.FENCED)
            decided = policy.settlement(row, fenced, (), now, self._retry, self.random)
            return replace(decided, next_attempt_at=now), None
        started = time.perf_counter()
        try:
            async with self._fence():
                result = await _send(sender, planned.out, row)
        except TimeoutError:  # the fence closed first: the send is given up (its socket too)
            result = DeliveryResult(Outcome.RETRY, Reason.FENCED)
        took = time.perf_counter() - started
        now = self.clock()
        remembered, result = effects(row, planned, result, refs, now)
        decided = policy.settlement(row, result, remembered, now, self._retry, self.random)
        decided = replace(decided, took=took)  # for history's attempts timeline
        self._observe(row, planned, result, decided, took)
        return decided, result

    def _may_send(self) -> bool:
        """False while fenced: the heartbeat was not renewed in time (relay.delivery.heartbeat)."""
        if self.heartbeat is None:
            return True
        alive = self.heartbeat.alive()
        if alive == self._fenced:  # log the changes only
            self._fenced = not alive
            if alive:
                log.info("heartbeat renewed: deliveries resume")
            else:
                log.error(
                    "heartbeat not renewed in time: no delivery starts until it is, and other"
                    " replicas may take this one's claims over"
                )
        return alive

    def _fence(self) -> AbstractAsyncContextManager[None]:
        if self.heartbeat is None:
            return contextlib.nullcontext()
        return self.heartbeat.bound()

    async def _settle_all(self, outcomes: list[Attempted]) -> bool:
        """Write outcomes in one group (submitted in the same turn, in order); False if one was
        LOST."""
        recorded = await asyncio.gather(*(self._settle(*outcome) for outcome in outcomes))
        return all(r is not Recording.LOST for r in recorded)

    async def _settle(
        self, row: OutboxRow, decided: Settlement, result: DeliveryResult | None
    ) -> Recording:
        recorded = await self.store.settle(decided)
        fields = {
            "event_id": row.event_id,
            "event_type": row.event_type,
            "destination": row.destination,
            "outcome": result.outcome.value if result is not None else decided.status.value,
            "reason": decided.reason.value,
            "attempt": row.attempts,
        }
        if recorded is Recording.LOST:
            log.warning(
                "outcome not recorded: another replica took this delivery over meanwhile",
                extra=fields,
            )
        elif decided.status is Status.SENT:
            log.info(
                "delivered"
                if result is not None
                else "older event did not overwrite a newer state",
                extra=fields,
            )
        elif decided.status is Status.PENDING:
            assert decided.next_attempt_at is not None
            retry_in = decided.next_attempt_at - decided.at
            log.warning(
                "delivery will be retried",
                extra={**fields, "retry_in": retry_in, "detail": decided.error},
            )
        else:
            self.metrics.dead.labels(row.destination, decided.reason.value).inc()
            what = "delivery failed for good: dead letter"
            if decided.reason is Reason.DESTINATION_GONE:
                what = "destination no longer configured: dead letter"
            log.error(what, extra={**fields, "detail": decided.error})
        return recorded

    def _observe(
        self,
        row: OutboxRow,
        planned: Move,
        result: DeliveryResult,
        decided: Settlement,
        took: float,
    ) -> None:
        """Count an attempt; at debug level, say what it was and what came of it."""
        self.metrics.deliveries.labels(
            row.destination, result.outcome.value, result.reason.value
        ).inc()
        age = max(0.0, decided.at - row.created_at)
        if decided.status is Status.SENT:
            self.metrics.latency.labels(row.destination).observe(age)
        if log.isEnabledFor(logging.DEBUG):
            retry_in = None
            if decided.next_attempt_at is not None:
                retry_in = decided.next_attempt_at - decided.at
            log.debug(
                "send attempt",
                extra={
                    "event_id": row.event_id,
                    "event_type": row.event_type,
                    "destination": row.destination,
                    "outcome": result.outcome.value,
                    "reason": result.reason.value,
                    "attempt": row.attempts,
                    "move": planned.kind.value,
                    "key": planned.key,
                    "detail": result.detail,
                    "duration_ms": round(took * 1000, 1),
                    "age_ms": round(age * 1000),
                    "retry_in": retry_in,
                },
            )

    async def drain(self, timeout: float) -> bool:
        """Wait for in-flight sends up to `timeout`; True if none is left. Runs stop after the
        message they are sending."""
        self._stopping = True
        tasks = list(self._busy.values())
        if not tasks:
            return True
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending


async def _send(sender: Sender, out: Outgoing, row: OutboxRow) -> DeliveryResult:
    try:
        return await sender.send(out)
    except Exception as exc:  # a sender bug must not lose the row
        log.exception("sender failed", extra={"event_id": row.event_id})
        return DeliveryResult.retry_unknown(type(exc).__name__)


async def _first(*aws: object) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
