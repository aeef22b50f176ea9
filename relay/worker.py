"""The delivery worker: claims due outbox rows, paces them per key, sends, records the outcome.

One send at a time per pacing key (a channel or webhook URL), so messages to one channel leave in
the order they were accepted; different keys flow in parallel. Senders never sleep: a transient
failure is written back with its next attempt time, a permanent one (or one older than
`max_age`) becomes a dead letter carrying the last error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from relay.deliver import DeliveryResult, Outcome, OutgoingMessage, Sender
from relay.pacing import Pacer, backoff
from relay.store import OutboxRow, SqliteStore

log = logging.getLogger("relay.worker")


def message_of(row: OutboxRow) -> OutgoingMessage:
    payload = row.payload
    return OutgoingMessage(
        text=str(payload.get("text", "")),
        blocks=list(payload.get("blocks") or []),
        thread_ts=payload.get("thread_ts"),
        reply_broadcast=bool(payload.get("reply_broadcast", False)),
    )


class Worker:
    def __init__(
        self,
        store: SqliteStore,
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
        self._wake = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        """New rows were enqueued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            delay = await self.tick()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    _first(self._wake.wait(), stop.wait()), timeout=max(0.005, delay)
                )

    async def tick(self) -> float:
        """Start every send that is due and allowed; returns seconds until the next look."""
        now = self.clock()
        next_look = self.poll_seconds
        for row in await self.store.due_heads(now):
            if row.pace_key in self._busy:
                continue
            wait = self.pacer.wait(row.pace_key, now)
            if wait > 0:
                next_look = min(next_look, wait)
                continue
            if not await self.store.claim(row.id, now + self.lease_seconds):
                continue
            self.pacer.take(row.pace_key, now)
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
                return
            try:
                result = await sender.send(message_of(row))
            except Exception as exc:  # a sender bug must not lose the row
                log.exception("sender failed", extra={"event_id": row.event_id})
                result = DeliveryResult.retry_unknown(type(exc).__name__)
            await self._record(row, result)
        finally:
            self._busy.pop(row.pace_key, None)
            self._wake.set()

    async def _record(self, row: OutboxRow, result: DeliveryResult) -> None:
        now = self.clock()
        fields = {
            "event_id": row.event_id,
            "event_type": row.event_type,
            "destination": row.destination,
            "outcome": result.outcome.value,
            "reason": result.reason.value,
            "attempt": row.attempts,
        }
        if result.outcome is Outcome.SENT:
            await self.store.mark_sent(row.id, result.channel_id, result.ts, now)
            log.info("delivered", extra=fields)
            return
        if result.outcome is Outcome.RETRY:
            if result.retry_after is not None and result.reason.value == "rate_limited":
                self.pacer.pause(row.pace_key, now, result.retry_after)
            if now - row.created_at < self.max_age:
                delay = backoff(
                    row.attempts,
                    self.random,
                    base=self.backoff_base,
                    cap=self.backoff_cap,
                    retry_after=result.retry_after,
                )
                await self.store.mark_retry(row.id, now + delay, result.reason.value, result.detail)
                log.warning(
                    "delivery will be retried",
                    extra={**fields, "retry_in": delay, "detail": result.detail},
                )
                return
            fields["reason"] = "max_age"
        await self.store.mark_dead(row.id, str(fields["reason"]), result.detail, now)
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


async def _first(*aws: object) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
