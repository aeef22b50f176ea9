"""Pacing and retry policy: pure functions of time, no I/O and no sleeping.

`Pacer` keeps one token bucket per pacing key (a Slack channel or a webhook URL): about one
message per second with a small burst, shared by every route that targets the key. A 429 pauses
only its key for `Retry-After`. `refill()`, `wait()` and `spend()` are the bucket arithmetic
alone, used by `Pacer` in memory and by the PostgreSQL store on its shared `pace` rows.
`backoff()` is the capped exponential retry schedule with jitter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace


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


def spend(bucket: Bucket) -> Bucket:
    """The bucket after one message left."""
    return replace(bucket, tokens=bucket.tokens - 1.0)


@dataclass
class Pacer:
    """Token buckets per key: `rate` messages per second, at most `burst` at once.

    In memory, for one process; replicas on PostgreSQL share the same arithmetic through the
    store's `pace` table instead.
    """

    rate: float = 1.0
    burst: float = 3.0
    _buckets: dict[str, Bucket] = field(default_factory=dict)

    def _bucket(self, key: str, now: float) -> Bucket:
        bucket = self._buckets.get(key) or Bucket(tokens=self.burst, updated=now)
        bucket = self._buckets[key] = refill(bucket, now, self.rate, self.burst)
        return bucket

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may send (0 when it may send now)."""
        return wait(self._bucket(key, now), now, self.rate)

    def take(self, key: str, now: float) -> None:
        self._buckets[key] = spend(self._bucket(key, now))

    def pause(self, key: str, now: float, seconds: float) -> None:
        """Slack said 429: nothing leaves on this key for `seconds`, and the burst is spent."""
        bucket = self._bucket(key, now)
        paused = max(bucket.paused_until, now + seconds)
        self._buckets[key] = Bucket(0.0, bucket.updated, paused)


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
