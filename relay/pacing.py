"""Pacing and retry policy: pure functions of time, no I/O and no sleeping.

`Pacer` keeps one token bucket per pacing key (a Slack channel or a webhook URL): about one
message per second with a small burst, shared by every route that targets the key. A 429 pauses
only its key for `Retry-After`. `backoff()` is the capped exponential retry schedule with jitter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    updated: float
    paused_until: float = 0.0


@dataclass
class Pacer:
    """Token buckets per key: `rate` messages per second, at most `burst` at once."""

    rate: float = 1.0
    burst: float = 3.0
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=self.burst, updated=now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
        bucket.updated = now
        return bucket

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may send (0 when it may send now)."""
        bucket = self._bucket(key, now)
        paused = max(0.0, bucket.paused_until - now)
        short = 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self.rate
        return max(paused, short)

    def take(self, key: str, now: float) -> None:
        bucket = self._bucket(key, now)
        bucket.tokens -= 1.0

    def pause(self, key: str, now: float, seconds: float) -> None:
        """Slack said 429: nothing leaves on this key for `seconds`, and the burst is spent."""
        bucket = self._bucket(key, now)
        bucket.paused_until = max(bucket.paused_until, now + seconds)
        bucket.tokens = 0.0


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
