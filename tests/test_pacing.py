"""Pacing buckets and the retry schedule: pure functions of an injected clock."""

from __future__ import annotations

from relay.delivery.policy import backoff
from relay.store.pacing import Bucket, refill, spend, wait


class Channel:
    """One key's bucket as the store keeps it between claims."""

    def __init__(self, rate: float = 1.0, burst: float = 3.0) -> None:
        self.rate, self.burst = rate, burst
        self.bucket = Bucket(tokens=burst, updated=0.0)

    def wait(self, now: float) -> float:
        self.bucket = refill(self.bucket, now, self.rate, self.burst)
        return wait(self.bucket, now, self.rate)

    def take(self, now: float) -> None:
        self.bucket = spend(refill(self.bucket, now, self.rate, self.burst))


def test_burst_then_one_per_second() -> None:
    channel, other = Channel(), Channel()
    for _ in range(3):
        assert channel.wait(0.0) == 0.0
        channel.take(0.0)
    assert channel.wait(0.0) == 1.0
    assert channel.wait(0.5) == 0.5
    assert channel.wait(1.0) == 0.0
    assert other.wait(0.0) == 0.0  # keys are independent


def test_sustained_rate_never_exceeds_limit() -> None:
    channel = Channel()
    now, sent = 0.0, []
    while now < 60.0:
        if channel.wait(now) == 0.0:
            channel.take(now)
            sent.append(now)
        now += 0.01
    # 3 burst + 1 per second afterwards
    assert len(sent) <= 3 + 60
    # token bucket: any window of T seconds holds at most burst + rate * T messages
    for i in range(len(sent)):
        for j in range(i, len(sent)):
            assert j - i + 1 <= 3 + 1.0 * (sent[j] - sent[i]) + 1e-6


def test_a_paused_key_waits_out_the_pause_then_refills_from_empty() -> None:
    # what a 429 with Retry-After: 30 at t=10 leaves in the store: no tokens, paused until 40
    bucket = Bucket(tokens=0.0, updated=10.0, paused_until=40.0)
    assert wait(refill(bucket, 10.0, 1.0, 3.0), 10.0, 1.0) == 30.0
    assert wait(refill(bucket, 39.0, 1.0, 3.0), 39.0, 1.0) == 1.0
    assert wait(refill(bucket, 40.0, 1.0, 3.0), 40.0, 1.0) == 0.0


def test_backoff_grows_caps_and_honours_retry_after() -> None:
    top = lambda: 1.0  # noqa: E731
    bottom = lambda: 0.0  # noqa: E731
    assert [backoff(a, top) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(1, bottom) == 0.5
    assert backoff(30, top, cap=300.0) == 300.0
    assert backoff(1, bottom, retry_after=7.0) == 7.0
