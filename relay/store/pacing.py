"""Pacing: the token bucket of each pacing key, as pure functions of time.

Each pacing key (a Slack channel, a webhook URL) has one token bucket: about one message per
second with a small burst, shared by every route that targets the key, kept in the store's
`pace` table so that replicas share it. A 429 pauses only its key for `Retry-After`.
`refill()`, `wait()` and `spend()` are the bucket arithmetic, applied by the store in the
transaction that claims a key's head.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Bucket:
    """One key's budget: tokens left at `updated`, and a 429 pause."""

    tokens: float
    updated: float
    paused_until: float = 0.0


def refill(bucket: Bucket, now: float, rate: float, burst: float) -> Bucket:
    """The bucket at `now`: tokens accrue at `rate` up to `burst`."""
    elapsed = max(0.0, now - bucket.updated)
    tokens = min(burst, bucket.tokens + elapsed * rate)
    return Bucket(tokens, max(now, bucket.updated), bucket.paused_until)


def wait(bucket: Bucket, now: float, rate: float) -> float:
    """Seconds until a refilled `bucket` may send one message (0 when it may send now)."""
    paused = max(0.0, bucket.paused_until - now)
    short = 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / rate
    return max(paused, short)


def spend(bucket: Bucket, messages: int = 1) -> Bucket:
    """The bucket after `messages` left."""
    return replace(bucket, tokens=bucket.tokens - messages)
