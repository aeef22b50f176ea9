"""What becomes of a message after an attempt: sent, tried again later, or a dead letter. Pure.

A transient failure is tried again after a capped exponential backoff with jitter, never
sooner than the chat's Retry-After; a rate limit also pauses the message's channel. A
permanent failure, or a transient one on a message older than `max_age`, makes it a dead
letter carrying the last error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from relay.delivery.pacing import backoff
from relay.records import (
    DeliveryResult,
    Effect,
    OutboxRow,
    Outcome,
    Reason,
    Settlement,
    Status,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_age: float = 86400.0  # a message still failing when older than this goes dead
    backoff_base: float = 1.0
    backoff_cap: float = 300.0


def settlement(
    row: OutboxRow,
    result: DeliveryResult,
    effects: tuple[Effect, ...],
    now: float,
    policy: RetryPolicy,
    random: Callable[[], float],
) -> Settlement:
    """The row's new state after `result`, with what its conversation remembers."""
    if result.outcome is Outcome.SENT:
        return Settlement(
            row.id, row.pace_key, Status.SENT, result.reason, now,
            channel_id=result.channel_id, ts=result.ts, effects=effects,
        )  # fmt: skip
    pause = None
    if result.reason is Reason.RATE_LIMITED and result.retry_after is not None:
        pause = result.retry_after
    if result.outcome is Outcome.RETRY:
        if now - row.created_at < policy.max_age:
            delay = backoff(
                row.attempts,
                random,
                base=policy.backoff_base,
                cap=policy.backoff_cap,
                retry_after=result.retry_after,
            )
            return Settlement(
                row.id, row.pace_key, Status.PENDING, result.reason, now, result.detail,
                next_attempt_at=now + delay, effects=effects, pause=pause,
            )  # fmt: skip
        reason = Reason.MAX_AGE
    else:
        reason = result.reason
    return Settlement(
        row.id, row.pace_key, Status.DEAD, reason, now, result.detail, effects=effects, pause=pause
    )


def gone(row: OutboxRow, now: float) -> Settlement:
    """A message whose destination a reload removed: a dead letter (replayable once it is back)."""
    detail = f"destination '{row.destination}' is not configured"
    return Settlement(row.id, row.pace_key, Status.DEAD, Reason.DESTINATION_GONE, now, detail)


def superseded(row: OutboxRow, now: float) -> Settlement:
    """Not sent: the message it would update already shows a newer state."""
    return Settlement(row.id, row.pace_key, Status.SENT, Reason.SUPERSEDED, now)
