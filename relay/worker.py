"""The delivery worker: claims due outbox rows, paces them per key, sends, records the outcome.

One send at a time per pacing key (a channel or webhook URL), so messages to one channel leave in
the order they were accepted; different keys flow in parallel. Senders never sleep: a transient
failure is written back with its next attempt time, a permanent one (or one older than
`max_age`) becomes a dead letter carrying the last error.

With a `heartbeat` (replicas on PostgreSQL) the worker claims and sends only while the heartbeat
is alive, and each send runs within its fence (relay.heartbeat says why that is what makes
another replica's early takeover of a dead replica's claims safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace

from relay.conversation import Step
from relay.deliver import DeliveryResult, Outcome, OutgoingMessage, Reason, Sender
from relay.digest import build as build_digest
from relay.heartbeat import Heartbeat
from relay.metrics import Metrics
from relay.pacing import Pacer, backoff
from relay.repeat import with_counter
from relay.store import ClaimOutcome, MessageRef, OutboxRow, Recording
from relay.stores import Store

log = logging.getLogger("relay.worker")


def message_of(row: OutboxRow) -> OutgoingMessage:
    payload = row.payload
    return OutgoingMessage(
        text=str(payload.get("text", "")),
        blocks=list(payload.get("blocks") or []),
        thread_ts=payload.get("thread_ts"),
        reply_broadcast=bool(payload.get("reply_broadcast", False)),
    )


@dataclass(frozen=True, slots=True)
class Move:
    """What one attempt does in its conversation, decided from the store just before sending."""

    kind: str  # post | reply | update | repeat | superseded
    message: OutgoingMessage
    key: str | None = None  # the message key updated (update, repeat)
    count: int | None = None  # the repeat count after this one


class Worker:
    def __init__(
        self,
        store: Store,
        senders: Mapping[str, Sender],
        *,
        pacer: Pacer | None = None,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        max_age: float = 86400.0,
        lease_seconds: float = 120.0,
        poll_seconds: float = 1.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        metrics: Metrics | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.store = store
        self.senders = dict(senders)
        self.pacer = pacer or Pacer()
        self.clock = clock
        self.random = random
        self.max_age = max_age
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.metrics = metrics or Metrics()
        self.heartbeat = heartbeat
        self._fenced = False
        self._wake = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._next_release = 0.0

    def wake(self) -> None:
        """New rows were enqueued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()  # before the tick: a wake that comes during it is not lost
            delay = await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    _first(self._wake.wait(), stop.wait()), timeout=max(0.005, delay)
                )

    async def tick(self) -> float:
        """Start every send that is due and allowed; returns seconds until the next look."""
        now = self.clock()
        next_look = self.poll_seconds
        await self._flush_digests(now)
        digest_at = await self.store.next_digest_at()
        if digest_at is not None:
            next_look = min(next_look, max(0.0, digest_at - now))
        if now >= self._next_release:
            # claims of a worker that died (another replica, or this one before a crash); with
            # replicas, a stale heartbeat tells within seconds, so look as often as it is renewed
            beats = self.heartbeat
            every = beats.renew_every if beats is not None else max(1.0, self.lease_seconds / 4)
            self._next_release = now + every
            released = await self.store.release_expired_leases(now)
            if released:
                log.warning(
                    "re-queued deliveries of a worker presumed dead (stale heartbeat or expired"
                    " lease)",
                    extra={"count": released},
                )
        if not self._may_send():
            return next_look  # fenced: claim nothing until the heartbeat is renewed
        for row in await self.store.due_heads(now):
            if row.pace_key in self._busy:
                continue
            claim = await self.store.claim_head(row, now, now + self.lease_seconds, self.pacer)
            if claim.outcome is ClaimOutcome.PACED:
                next_look = min(next_look, claim.wait)
                continue
            if claim.outcome is ClaimOutcome.TAKEN:
                continue
            claimed = replace(row, attempts=row.attempts + 1)
            self._busy[row.pace_key] = asyncio.create_task(self._deliver(claimed))
        due = await self.store.next_due_at()
        if due is not None and due > now:
            next_look = min(next_look, due - now)
        return next_look

    async def _deliver(self, row: OutboxRow) -> None:
        try:
            sender = self.senders.get(row.destination)
            if sender is None:
                await self.store.mark_dead(
                    row.id,
                    "destination_gone",
                    f"destination '{row.destination}' is not configured",
                    self.clock(),
                )
                self.metrics.dead.labels(row.destination, "destination_gone").inc()
                log.error(
                    "destination no longer configured: dead letter",
                    extra={"event_id": row.event_id, "destination": row.destination},
                )
                return
            step = Step.from_json(row.step)
            threads = step is not None and getattr(sender, "threads", True)
            move = await self._move(row, step if threads else None)
            if move.kind == "superseded":
                await self.store.mark_sent(row.id, None, None, self.clock(), reason="superseded")
                log.info(
                    "older event did not overwrite a newer state",
                    extra={"event_id": row.event_id, "destination": row.destination},
                )
                return
            if not self._may_send():  # fenced since the claim: the row goes back unsent
                await self.store.mark_retry(row.id, self.clock(), Reason.FENCED.value, None)
                return
            started = time.perf_counter()
            try:
                async with self._fence():
                    result = await _send(sender, move.message, row)
            except TimeoutError:  # the fence closed first: the send is given up (its socket too)
                result = DeliveryResult(Outcome.RETRY, Reason.FENCED)
            took = time.perf_counter() - started
            if step is not None and threads:
                result = await self._remember(row, step, move, result)
            await self._record(row, result, move, took)
        finally:
            self._busy.pop(row.pace_key, None)
            self._wake.set()

    def _may_send(self) -> bool:
        """False while fenced: the heartbeat was not renewed in time (relay.heartbeat)."""
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

    async def _move(self, row: OutboxRow, step: Step | None) -> Move:
        message = message_of(row)
        if step is None:
            return Move("post", message)
        now, key = self.clock(), row.pace_key
        if step.repeat is not None:
            ref = await self.store.get_message(key, step.repeat, now)
            if ref is not None:
                count = ref.count + 1
                counted = with_counter(message, count, ref.first_at, now)
                return Move("repeat", _update(counted, ref), step.repeat, count)
        if step.update is not None:
            ref = await self.store.get_message(key, step.update, now)
            if ref is not None:
                older = step.order_at is not None and ref.order_at is not None
                if older and step.order_at < ref.order_at:  # type: ignore[operator]
                    return Move("superseded", message)
                return Move("update", _update(message, ref), step.update)
        if step.thread is not None:
            parent = await self.store.get_message(key, step.thread, now)
            if parent is not None:
                reply = replace(message, thread_ts=parent.ts, reply_broadcast=step.broadcast)
                return Move("reply", reply)
        return Move("post", message)

    async def _remember(
        self, row: OutboxRow, step: Step, move: Move, result: DeliveryResult
    ) -> DeliveryResult:
        """Record in the store what a sent message now is in its conversation."""
        now, pace_key = self.clock(), row.pace_key
        if result.outcome is not Outcome.SENT:
            if result.reason is Reason.NOT_FOUND and move.key is not None:
                # the message to update was deleted: forget it; the retry posts anew
                await self.store.forget_message(pace_key, move.key)
                await self._close(pace_key, step, move)
                return replace(result, outcome=Outcome.RETRY, retry_after=0.0)
            return result
        if move.kind in ("update", "repeat"):
            assert move.key is not None
            await self.store.touch_message(
                pace_key, move.key, order_at=step.order_at, count=move.count, now=now
            )
            await self._close(pace_key, step, move)
            return result
        if result.ts is None:
            return result  # an incoming webhook: no ts, nothing to thread onto or update
        ref = MessageRef(result.channel_id, result.ts, step.order_at, 1, now, now)
        keys = []
        if move.kind == "post" and step.thread is not None:
            keys.append((step.thread, now + step.ttl))
        # a resolution that found no open request to update is not itself an open request
        if step.update is not None and step.update not in (step.thread, step.closes):
            keys.append((step.update, now + step.ttl))
        if step.register is not None:
            keys.append((step.register, now + step.ttl))
        if step.opens is not None:
            keys.append((step.opens, now + step.ttl))
        if step.repeat is not None:
            keys.append((step.repeat, now + step.repeat_interval))
        for name, expires in keys:
            await self.store.put_message(pace_key, name, ref, expires)
        if move.kind == "reply" and step.thread is not None:
            await self.store.touch_message(
                pace_key, step.thread, order_at=None, count=None, now=now, expires_at=now + step.ttl
            )
        return result

    async def _close(self, pace_key: str, step: Step, move: Move) -> None:
        """Free the slot `step.closes` if it still names the message this move updated: that
        request is resolved (or gone), so it is no longer its session's open request."""
        ts = move.message.update_ts
        if step.closes is None or move.kind != "update" or ts is None:
            return
        slot = await self.store.get_message(pace_key, step.closes, self.clock())
        if slot is not None and slot.ts == ts:
            await self.store.forget_message(pace_key, step.closes)

    async def _flush_digests(self, now: float) -> None:
        for batch in await self.store.due_digests(now):
            if not batch.items:
                await self.store.flush_digest(batch, None, now)
                continue
            message = build_digest(batch)
            await self.store.flush_digest(batch, message, now)
            log.info(
                "digest enqueued",
                extra={
                    "route": batch.route,
                    "destination": batch.destination,
                    "events": len(batch.items),
                },
            )

    async def _record(
        self, row: OutboxRow, result: DeliveryResult, move: Move, took: float
    ) -> None:
        """Write an attempt's outcome: sent, retried later (paced by Retry-After), or dead."""
        now = self.clock()
        retry_in = None
        if result.outcome is Outcome.RETRY and now - row.created_at < self.max_age:
            retry_in = backoff(
                row.attempts,
                self.random,
                base=self.backoff_base,
                cap=self.backoff_cap,
                retry_after=result.retry_after,
            )
        fields = {
            "event_id": row.event_id,
            "event_type": row.event_type,
            "destination": row.destination,
            "outcome": result.outcome.value,
            "reason": result.reason.value,
            "attempt": row.attempts,
        }
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "send attempt",
                extra={
                    **fields,
                    "move": move.kind,
                    "key": move.key,
                    "detail": result.detail,
                    "duration_ms": round(took * 1000, 1),
                    "age_ms": round(max(0.0, now - row.created_at) * 1000),
                    "retry_in": retry_in,
                },
            )
        self.metrics.deliveries.labels(
            row.destination, result.outcome.value, result.reason.value
        ).inc()
        if result.outcome is Outcome.SENT:
            self.metrics.latency.labels(row.destination).observe(max(0.0, now - row.created_at))
            recorded = await self.store.mark_sent(row.id, result.channel_id, result.ts, now)
            log.info("delivered", extra=fields)
            _lost(recorded, fields)
            return
        if result.outcome is Outcome.RETRY:
            if result.retry_after is not None and result.reason.value == "rate_limited":
                await self.store.pause_key(row.pace_key, now, result.retry_after, self.pacer)
            if retry_in is not None:
                recorded = await self.store.mark_retry(
                    row.id, now + retry_in, result.reason.value, result.detail
                )
                if not _lost(recorded, fields):
                    log.warning(
                        "delivery will be retried",
                        extra={**fields, "retry_in": retry_in, "detail": result.detail},
                    )
                return
            fields["reason"] = "max_age"
        recorded = await self.store.mark_dead(row.id, str(fields["reason"]), result.detail, now)
        if _lost(recorded, fields):
            return
        self.metrics.dead.labels(row.destination, str(fields["reason"])).inc()
        log.error(
            "delivery failed for good: dead letter", extra={**fields, "detail": result.detail}
        )

    async def drain(self, timeout: float) -> bool:
        """Wait for in-flight sends up to `timeout`; True if none is left."""
        tasks = list(self._busy.values())
        if not tasks:
            return True
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending


async def _send(sender: Sender, message: OutgoingMessage, row: OutboxRow) -> DeliveryResult:
    try:
        return await sender.send(message)
    except Exception as exc:  # a sender bug must not lose the row
        log.exception("sender failed", extra={"event_id": row.event_id})
        return DeliveryResult.retry_unknown(type(exc).__name__)


def _lost(recorded: Recording, fields: Mapping[str, object]) -> bool:
    """True (and logged) when the outcome was not written: the row had been taken over."""
    if recorded is Recording.LOST:
        log.warning(
            "outcome not recorded: another replica took this delivery over meanwhile",
            extra=dict(fields),
        )
        return True
    return False


def _update(message: OutgoingMessage, ref: MessageRef) -> OutgoingMessage:
    return replace(message, update_ts=ref.ts, channel_id=ref.channel_id, thread_ts=None)


async def _first(*aws: object) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
