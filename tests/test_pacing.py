"""Pacing buckets and the retry schedule: pure functions of an injected clock."""

from __future__ import annotations

from relay.pacing import Pacer, backoff


def test_burst_then_one_per_second() -> None:
    pacer = Pacer(rate=1.0, burst=3.0)
    for _ in range(3):
        assert pacer.wait("c", 0.0) == 0.0
        pacer.take("c", 0.0)
    assert pacer.wait("c", 0.0) == 1.0
    assert pacer.wait("c", 0.5) == 0.5
    assert pacer.wait("c", 1.0) == 0.0
    assert pacer.wait("other", 0.0) == 0.0  # keys are independent


def test_sustained_rate_never_exceeds_limit() -> None:
    pacer = Pacer(rate=1.0, burst=3.0)
    now, sent = 0.0, []
    while now < 60.0:
        if pacer.wait("c", now) == 0.0:
            pacer.take("c", now)
            sent.append(now)
        now += 0.01
    # 3 burst + 1 per second afterwards
    assert len(sent) <= 3 + 60
    # token bucket: any window of T seconds holds at most burst + rate * T messages
    for i in range(len(sent)):
        for j in range(i, len(sent)):
            assert j - i + 1 <= 3 + 1.0 * (sent[j] - sent[i]) + 1e-6


def test_pause_after_429_blocks_only_that_key() -> None:
    pacer = Pacer()
    pacer.pause("c", 10.0, 30.0)
    assert pacer.wait("c", 10.0) == 30.0
    assert pacer.wait("c", 39.0) == 1.0
    assert pacer.wait("c", 40.0) == 0.0
    assert pacer.wait("d", 10.0) == 0.0


def test_backoff_grows_caps_and_honours_retry_after() -> None:
    top = lambda: 1.0  # noqa: E731
    bottom = lambda: 0.0  # noqa: E731
    assert [backoff(a, top) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(1, bottom) == 0.5
    assert backoff(30, top, cap=300.0) == 300.0
    assert backoff(1, bottom, retry_after=7.0) == 7.0
