"""The delivery worker against the fake Slack over HTTP: retries, dead letters, pacing, order;
and its self-fence when it cannot renew its heartbeat."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeslack import FakeSlack
from inbox import accept

from relay.delivery.heartbeat import Heartbeat
from relay.delivery.policy import Pacing, RetryPolicy
from relay.delivery.slack import SlackChannelSender, SlackWebhookSender, web_client, webhook_client
from relay.delivery.worker import Worker
from relay.event import Event
from relay.messages import Blocks
from relay.records import (
    ClaimRound,
    DeliveryResult,
    NewMessage,
    Outcome,
    Outgoing,
    Reason,
    Status,
)
from relay.store import SqliteStore

ALERTS, EVENTS = "C0ALERTS01", "C0EVENTS01"


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(hang_seconds=3.0) as fake:
        yield fake


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "relay.db")
    await s.open()
    yield s
    await s.close()


def make_worker(
    store: SqliteStore, slack: FakeSlack, *, max_age: float = 86400.0, pacing: Pacing | None = None
) -> Worker:
    client = web_client("xoxb-test-token", base_url=slack.api_url, timeout=1)
    senders = {
        "alerts": SlackChannelSender(client, "#browser-alerts"),
        "events": SlackChannelSender(client, "#browser-events"),
        "alerts-too": SlackChannelSender(client, "browser-alerts"),
        "hook": SlackWebhookSender(webhook_client(slack.webhook_url("alerts-hook"), timeout=1)),
    }
    retry = RetryPolicy(max_age=max_age, backoff_base=0.2)
    return Worker(store, senders, random=lambda: 0.0, poll_seconds=0.2, retry=retry, pacing=pacing)


async def enqueue(store: SqliteStore, n: int, dest: str = "alerts", key: str | None = None,
                  start: int = 0) -> None:  # fmt: skip
    pace_key = key or f"slack:{dest}"
    for i in range(start, start + n):
        event = Event(source="anchor", provider="anchor", id=f"e{i}", type="task.failed", data={})
        message = NewMessage(dest, pace_key, "t", Blocks(f"message {i}"))
        await accept(store, event, [message], time.time())


async def run_until(worker: Worker, done: object, timeout: float = 30.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if await done():  # type: ignore[operator]
                return
            await asyncio.sleep(0.05)
        raise AssertionError("condition not reached in time")
    finally:
        stop.set()
        await task
        await worker.drain(5)


async def test_transient_failures_are_retried_until_sent(
    store: SqliteStore, slack: FakeSlack
) -> None:
    slack.reset()
    slack.script("#browser-alerts", ["ratelimited:1", "server_error", "timeout", "drop_connection"])
    await enqueue(store, 1)
    worker = make_worker(store, slack)

    async def sent() -> bool:
        return bool(await store.rows(Status.SENT))

    await run_until(worker, sent)
    row = (await store.rows(Status.SENT))[0]
    assert row.attempts == 5
    assert [m.text for m in slack.messages] == ["message 0"]
    outcomes = [r.scripted for r in slack.requests if r.method == "chat.postMessage"]
    assert outcomes == ["ratelimited:1", "server_error", "timeout", "drop_connection", None]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("channel_not_found", "channel"),
        ("invalid_auth", "auth"),
        ("invalid_blocks", "invalid_payload"),
    ],
)
async def test_permanent_errors_become_dead_letters_and_replay(
    store: SqliteStore, slack: FakeSlack, code: str, reason: str
) -> None:
    slack.reset()
    slack.script("#browser-alerts", [code])
    await enqueue(store, 1)
    worker = make_worker(store, slack)

    async def dead() -> bool:
        return bool(await store.rows(Status.DEAD))

    await run_until(worker, dead)
    letter = (await store.rows(Status.DEAD))[0]
    assert (letter.last_reason, letter.last_error, letter.attempts) == (reason, code, 1)
    assert slack.messages == []
    # the operator fixed the cause: replay delivers it
    assert await store.replay_dead(None, time.time()) == 1

    async def sent() -> bool:
        return bool(await store.rows(Status.SENT))

    await run_until(worker, sent)
    assert [m.text for m in slack.messages] == ["message 0"]


async def test_too_old_transient_failure_goes_dead(store: SqliteStore, slack: FakeSlack) -> None:
    slack.reset()
    slack.script("#browser-alerts", ["server_error"])
    await enqueue(store, 1)
    worker = make_worker(store, slack, max_age=0.0)

    async def dead() -> bool:
        return bool(await store.rows(Status.DEAD))

    await run_until(worker, dead)
    assert (await store.rows(Status.DEAD))[0].last_reason == "max_age"


async def test_pacing_per_channel_is_never_exceeded_and_order_is_kept(
    store: SqliteStore, slack: FakeSlack
) -> None:
    slack.reset()
    # two destination names for one channel share its pace; a second channel flows alongside
    await enqueue(store, 4, "alerts", "slack:browser-alerts")
    await enqueue(store, 3, "alerts-too", "slack:browser-alerts", start=4)
    await enqueue(store, 4, "events", start=7)
    worker = make_worker(store, slack, pacing=Pacing(rate=2.0, burst=2.0))

    async def all_sent() -> bool:
        return len(await store.rows(Status.SENT)) == 11

    await run_until(worker, all_sent)
    alerts = [m for m in slack.messages if m.channel == ALERTS]
    assert [m.text for m in alerts] == [f"message {i}" for i in range(7)]
    times = [m.received for m in alerts]
    slack_jitter = 0.05
    for i in range(len(times)):
        for j in range(i, len(times)):
            assert j - i + 1 <= 2 + 2.0 * (times[j] - times[i] + slack_jitter)
    events = [m.received for m in slack.messages if m.channel == EVENTS]
    assert events[0] < times[-1], "the other channel did not wait for this one"


async def test_rate_limit_pauses_only_that_channel(store: SqliteStore, slack: FakeSlack) -> None:
    slack.reset()
    slack.script("#browser-alerts", ["ratelimited:2"])
    await enqueue(store, 1, "alerts")
    await enqueue(store, 3, "events", start=1)
    worker = make_worker(store, slack)
    began = time.monotonic()

    async def all_sent() -> bool:
        return len(await store.rows(Status.SENT)) == 4

    await run_until(worker, all_sent)
    alert = next(m for m in slack.messages if m.channel == ALERTS)
    events = [m for m in slack.messages if m.channel == EVENTS]
    assert alert.received - began >= 2.0  # waited Retry-After
    assert all(m.received < alert.received for m in events)


async def test_webhook_destination_retries_on_429(store: SqliteStore, slack: FakeSlack) -> None:
    slack.reset()
    slack.script("alerts-hook", ["ratelimited:1"])
    await enqueue(store, 1, "hook", "webhook:x")
    worker = make_worker(store, slack)

    async def sent() -> bool:
        return bool(await store.rows(Status.SENT))

    await run_until(worker, sent)
    assert [m.text for m in slack.messages] == ["message 0"]


async def test_a_destination_removed_by_a_reload_turns_its_queue_into_counted_dead_letters(
    store: SqliteStore, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    slack.reset()
    await enqueue(store, 2, dest="gone")
    worker = make_worker(store, slack)

    async def dead() -> bool:
        return len(await store.rows(Status.DEAD)) == 2

    with caplog.at_level("ERROR", logger="relay.worker"):
        await run_until(worker, dead)
    assert {r.last_error for r in await store.rows(Status.DEAD)} == {
        "destination 'gone' is not configured"
    }
    value = worker.metrics.registry.get_sample_value(
        "relay_dead_letters_total", {"destination": "gone", "reason": "destination_gone"}
    )
    assert value == 2
    lines = [(r.getMessage(), getattr(r, "event_id", None)) for r in caplog.records]
    assert lines == [("destination no longer configured: dead letter", f"e{i}") for i in (0, 1)]
    assert slack.messages == []


async def test_a_message_queued_while_the_worker_looks_is_sent_without_waiting_for_a_poll(
    store: SqliteStore, slack: FakeSlack
) -> None:
    slack.reset()
    worker = make_worker(store, slack)
    worker.poll_seconds = 60.0  # a lost wake-up would leave the message for a minute
    worker.clock = lambda: time.time() + 1.0  # the message is due by the time the tick ends
    looked = asyncio.Event()
    claim = store.claim

    async def look_while_a_message_arrives(now: float, lease_until: float, **kw: Any) -> ClaimRound:
        found = await claim(now, lease_until, **kw)
        if not looked.is_set():
            looked.set()
            await enqueue(store, 1)  # the router queues a message during the worker's tick
            worker.wake()
        return found

    store.claim = look_while_a_message_arrives  # type: ignore[method-assign]

    async def sent() -> bool:
        return len(slack.messages_in("#browser-alerts")) == 1

    await run_until(worker, sent, timeout=10.0)


class Beats:
    """The heartbeat's side of a store, whose database can be cut off."""

    def __init__(self) -> None:
        self.down = False

    async def beat(self) -> None:
        if self.down:
            raise OSError("database unreachable")


class SlowSlack:
    """A destination that takes `seconds` to answer each post (an in-process stand-in)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: list[str] = []
        self.given_up: list[str] = []
        self.answered: list[str] = []

    async def send(self, out: Outgoing) -> DeliveryResult:
        self.started.append(out.message.text)
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.given_up.append(out.message.text)
            raise
        self.answered.append(out.message.text)
        return DeliveryResult(Outcome.SENT, Reason.OK, channel_id="C0SLOW0001", ts="1.000001")


async def beating(heartbeat: Heartbeat, stop: asyncio.Event) -> asyncio.Task[None]:
    await heartbeat.renew()
    return asyncio.create_task(heartbeat.run(stop))


async def test_a_send_outlasting_the_fence_runs_to_its_end_while_the_heartbeat_is_renewed(
    store: SqliteStore,
) -> None:
    slow = SlowSlack(seconds=1.0)
    heartbeat = Heartbeat(Beats(), renew_every=0.05, fence_after=0.3)
    worker = Worker(store, {"slow": slow}, poll_seconds=0.05, heartbeat=heartbeat)
    stop = asyncio.Event()
    renewing = await beating(heartbeat, stop)
    await enqueue(store, 1, "slow")

    async def sent() -> bool:
        return bool(await store.rows(Status.SENT))

    try:
        await run_until(worker, sent, timeout=10.0)
    finally:
        stop.set()
        await renewing
    assert (slow.answered, slow.given_up) == (["message 0"], [])


async def test_a_worker_that_cannot_renew_its_heartbeat_gives_its_send_up_and_starts_no_other(
    store: SqliteStore,
) -> None:
    beats = Beats()
    slow, quick = SlowSlack(seconds=30.0), SlowSlack(seconds=0.0)
    heartbeat = Heartbeat(beats, renew_every=0.05, fence_after=0.3)
    worker = Worker(
        store,
        {"slow": slow, "quick": quick},
        poll_seconds=0.05,
        retry=RetryPolicy(backoff_base=0.05),
        heartbeat=heartbeat,
    )
    stop, halt = asyncio.Event(), asyncio.Event()
    renewing = await beating(heartbeat, stop)
    working = asyncio.create_task(worker.run(halt))
    loop = asyncio.get_running_loop()
    try:
        await enqueue(store, 1, "slow")
        worker.wake()
        while not slow.started:
            await asyncio.sleep(0.01)
        beats.down = True  # from now on no renewal succeeds
        cut = loop.time()
        while not slow.given_up:
            assert loop.time() - cut < 2.0, "the send outlived the fence"
            await asyncio.sleep(0.01)
        assert loop.time() - cut > 0.2  # the fence counts from the last renewal
        while not await store.rows(Status.PENDING):  # the give-up is being recorded
            assert loop.time() - cut < 5.0, "the given-up send was not recorded"
            await asyncio.sleep(0.01)
        (back,) = await store.rows(Status.PENDING)
        assert (back.event_id, back.last_reason) == ("e0", "fenced")
        # fenced: nothing new starts, on any channel
        slow.seconds = 0.0
        await enqueue(store, 1, "quick", start=1)
        worker.wake()
        await asyncio.sleep(0.5)
        assert (slow.started, quick.started) == (["message 0"], [])
        beats.down = False  # the database is back: so are deliveries
        deadline = loop.time() + 5.0
        while len(await store.rows(Status.SENT)) < 2:
            assert loop.time() < deadline, "deliveries did not resume"
            await asyncio.sleep(0.05)
        assert (slow.answered, quick.answered) == (["message 0"], ["message 1"])
    finally:
        halt.set()
        stop.set()
        await asyncio.gather(working, renewing)
        await worker.drain(5)


async def test_the_worker_tells_when_its_channels_are_held_back_by_their_pace(
    store: SqliteStore, slack: FakeSlack
) -> None:
    slack.reset()
    await enqueue(store, 4)
    worker = make_worker(store, slack, pacing=Pacing(rate=0.5, burst=1.0))
    assert not worker.paced()

    async def first_sent() -> bool:
        return len(await store.rows(Status.SENT)) >= 1

    await run_until(worker, first_sent)
    await worker.tick()  # the next message waits for the channel's pace
    assert worker.paced()
    assert len(await store.rows(Status.SENT)) == 1

    unpaced = make_worker(store, slack, pacing=Pacing(rate=1000.0, burst=1000.0))

    async def all_sent() -> bool:
        return len(await store.rows(Status.SENT)) == 4

    await run_until(unpaced, all_sent)
    assert not unpaced.paced()
