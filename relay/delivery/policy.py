"""What becomes of a message after an attempt: sent, tried again later, or a dead letter; and
the pacing and retry policy a config gives the worker. Pure.

A transient failure is tried again after a capped exponential backoff with jitter (`backoff`),
never sooner than the chat's Retry-After; a rate limit also pauses the message's channel. A
permanent failure, or a transient one on a message older than `max_age`, makes it a dead
letter carrying the last error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from relay.config import Config
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


@dataclass(frozen=True, slots=True)
class Pacing:
    """Messages per second per channel, and the burst allowed on top: `keys` for the pacing
    keys whose destinations set their own, `rate` and `burst` for the rest."""

    rate: float = 1.0
    burst: float = 3.0
    keys: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def settings(
    config: Config, paces: Mapping[str, tuple[float, float]]
) -> tuple[Pacing, RetryPolicy]:
    """The worker's pacing (each key's `paces`) and retry policy under a config."""
    return (
        Pacing(rate=config.pacing.rate, burst=config.pacing.burst, keys=paces),
        RetryPolicy(max_age=config.store.max_age),
    )


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


def backoff(
    attempt: int,
    random: Callable[[], float],
    *,
    base: float = 1.0,
    cap: float = 300.0,
    retry_after: float | None = None,
) -> float:
    """Delay before attempt `attempt + 1`: capped exponential with full-range jitter in [½, 1],
    and never shorter than the server's `Retry-After`."""
    exp = min(cap, base * float(2 ** max(0, attempt - 1)))
    delay = exp * (0.5 + random() / 2)
    return float(max(delay, retry_after or 0.0))


def gone(row: OutboxRow, now: float) -> Settlement:
    """A message whose destination a reload removed: a dead letter (replayable once it is back)."""
    detail = f"destination '{row.destination}' is not configured"
    return Settlement(row.id, row.pace_key, Status.DEAD, Reason.DESTINATION_GONE, now, detail)


def superseded(row: OutboxRow, now: float) -> Settlement:
    """Not sent: the message it would update already shows a newer state."""
    return Settlement(row.id, row.pace_key, Status.SENT, Reason.SUPERSEDED, now)
