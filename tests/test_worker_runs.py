"""Runs: the worker claims a channel's consecutive due messages together and sends them in
order. What a run must keep: a conversation threads within the run as it would message by
message, a rate limit stops the run and what follows waits (uncounted), a shutdown gives the
unsent messages back, and what a run remembers of its conversation is what the store would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
from fakeslack import FakeSlack
from inbox import accept

from relay.conversation.memory import Memory
from relay.delivery.policy import Pacing, RetryPolicy
from relay.delivery.slack import SlackChannelSender, web_client
from relay.delivery.worker import Worker
from relay.event import Event
from relay.messages import Blocks
from relay.records import (
    ClaimRound,
    DeliveryResult,
    Effect,
    Forget,
    MessageRef,
    NewMessage,
    Outcome,
    Outgoing,
    Reason,
    Recording,
    Remember,
    Settlement,
    Status,
    Step,
    Touch,
)
from relay.store import SqliteStore, Store

UNPACED = Pacing(rate=1000.0, burst=1000.0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "relay.db")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(rate_limit=3) as fake:  # Slack's answer to a burst: 429 past 3 a second
        yield fake


async def enqueue(store: Store, n: int, step: Step | None = None) -> None:
    for i in range(n):
        event = Event(source="anchor", provider="anchor", id=f"e{i}", type="task.failed", data={})
        message = NewMessage("alerts", "slack:alerts", "t", Blocks(f"message {i}"), step)
        await accept(store, event, [message], time.time())


def counting_claims(store: SqliteStore) -> list[ClaimRound]:
    """Record every claim the worker makes."""
    rounds: list[ClaimRound] = []
    claim = store.claim

    async def recorded(*args: object, **kwargs: object) -> ClaimRound:
        found = await claim(*args, **kwargs)  # type: ignore[arg-type]
        rounds.append(found)
        return found

    store.claim = recorded  # type: ignore[method-assign]
    return rounds


async def deliver_all(worker: Worker, store: Store, n: int, timeout: float = 20.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while len(await store.rows(Status.SENT)) < n:
            assert time.monotonic() < deadline, "not everything was delivered in time"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await worker.drain(5)


def worker_for(store: SqliteStore, slack: FakeSlack) -> Worker:
    client = web_client("xoxb-test-token", base_url=slack.api_url, timeout=2)
    senders = {"alerts": SlackChannelSender(client, "#browser-alerts")}
    retry = RetryPolicy(backoff_base=0.2)
    return Worker(store, senders, random=lambda: 0.0, poll_seconds=0.2, retry=retry, pacing=UNPACED)


async def test_a_conversation_threads_within_one_run(store: SqliteStore) -> None:
    with FakeSlack() as slack:
        await enqueue(store, 6, Step(thread="session-1"))
        rounds = counting_claims(store)
        await deliver_all(worker_for(store, slack), store, 6)
    runs = [len(c.rows) for r in rounds for c in r.claimed]
    assert runs == [6], "the six messages did not leave as one run"
    root, *replies = slack.messages
    assert [m.text for m in slack.messages] == [f"message {i}" for i in range(6)]
    assert root.thread_ts is None
    assert [m.thread_ts for m in replies] == [root.ts] * 5


async def test_a_rate_limit_stops_the_run_and_the_rest_waits_uncounted(
    store: SqliteStore, slack: FakeSlack
) -> None:
    await enqueue(store, 8)
    began = time.monotonic()
    await deliver_all(worker_for(store, slack), store, 8)
    assert [m.text for m in slack.messages] == [f"message {i}" for i in range(8)]
    attempts = [r.attempts for r in await store.rows(Status.SENT)]
    assert attempts == [1, 1, 1, 2, 1, 1, 2, 1], attempts
    limited = [r.scripted for r in slack.requests if r.status == 429]
    assert len(limited) == 2  # one 429 per second: the run stopped at it each time
    assert slack.messages[3].received - began >= 1.0  # waited its Retry-After


async def test_a_shutdown_during_a_run_gives_the_unsent_messages_back(
    store: SqliteStore,
) -> None:
    await enqueue(store, 5)
    release, sent = asyncio.Event(), []

    class Slow:
        async def send(self, out: Outgoing) -> DeliveryResult:
            await release.wait()
            assert isinstance(out.message, Blocks)
            sent.append(out.message.text)
            return DeliveryResult(Outcome.SENT, Reason.OK, channel_id="C1", ts=f"{len(sent)}.0")

    worker = Worker(store, {"alerts": Slow()}, poll_seconds=0.2, pacing=UNPACED)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    while not worker._busy:  # the run has started its first send
        await asyncio.sleep(0.01)
    stop.set()
    await task
    draining = asyncio.create_task(worker.drain(5))
    await asyncio.sleep(0.05)
    release.set()
    assert await draining
    assert sent == ["message 0"]
    pending = await store.rows(Status.PENDING)
    assert [(r.message.text, r.attempts) for r in pending] == [
        (f"message {i}", 0) for i in range(1, 5)
    ]


REF = MessageRef("C1", "1.0", 5.0, 1, 100.0, 100.0)
EFFECTS: list[tuple[Effect, ...]] = [
    (Remember("t", REF, 900.0), Remember("u", REF, 150.0)),
    (Remember("t", REF, 900.0), Touch("t", 9.0, 3, 950.0), Touch("t", 2.0, None, 120.0)),
    (Remember("u", REF, 900.0), Touch("u", None, None, None), Forget("t")),
    (Touch("t", 1.0, 2, 999.0),),  # touching what is not remembered changes nothing
    (Remember("t", REF, 900.0), Forget("t"), Remember("u", MessageRef(None, "2.0", None, 4,
                                                                        1.0, 1.0), 901.0)),
]  # fmt: skip


@pytest.mark.parametrize("effects", EFFECTS)
async def test_what_a_run_remembers_is_what_the_store_records(
    store: SqliteStore, effects: tuple[Effect, ...]
) -> None:
    event = Event(source="anchor", provider="anchor", id="e0", type="task.failed", data={})
    first = NewMessage("alerts", "k", "t", Blocks("first"))
    after = NewMessage("alerts", "k", "t", Blocks("after"), Step(thread="t", update="u"))
    await accept(store, event, [first, after], 100.0)
    found = await store.claim(100.0, 160.0, rate=1.0, burst=1.0, limit=1)
    (claim,) = found.claimed
    memory = Memory(claim.known)
    memory.apply(effects, 110.0)
    settled = Settlement(claim.row.id, "k", Status.SENT, Reason.OK, 110.0, effects=effects)
    await store.settle(settled)
    for now in (111.0, 140.0):
        found = await store.claim(now, now + 60, rate=1.0, burst=1.0, limit=1)
        if found.claimed:
            (claim,) = found.claimed
            assert claim.refs == memory.refs(now)
            assert claim.known == {k: v for k, v in memory.known.items() if v.expires_at > now}
            await store.unclaim([claim.row.id])


async def test_a_busy_channel_writes_its_outcomes_in_groups_in_order(store: SqliteStore) -> None:
    """While one outcome is being committed the next messages go out; their outcomes are
    written together next, never one transaction per message, and never out of order."""
    groups: list[list[int]] = []
    commit = store._settling._commit  # the group commit of outcomes

    async def slow(batch: Sequence[Settlement]) -> list[Recording]:
        groups.append([s.row_id for s in batch])
        await asyncio.sleep(0.05)  # a commit slower than a send
        return await commit(batch)

    store._settling._commit = slow
    with FakeSlack() as slack:
        await enqueue(store, 24)
        await deliver_all(worker_for(store, slack), store, 24)
    assert [m.text for m in slack.messages] == [f"message {i}" for i in range(24)]
    written = [row_id for group in groups for row_id in group]
    assert written == sorted(written) and len(written) == 24
    assert len(groups) < 12, groups
    assert max(len(g) for g in groups) <= 8  # at most UNRECORDED sent ahead of what is written


class Answering:
    """A chat that answers every post after `seconds`, noting how many writes of outcomes had
    begun by then."""

    def __init__(self, seconds: float, groups: list[list[int]]) -> None:
        self.seconds = seconds
        self.groups = groups
        self.texts: list[str] = []
        self.written_before: list[int] = []

    async def send(self, out: Outgoing) -> DeliveryResult:
        await asyncio.sleep(self.seconds)
        self.texts.append(out.message.text)
        self.written_before.append(len(self.groups))
        return DeliveryResult(Outcome.SENT, Reason.OK)


def outcome_writes(store: SqliteStore) -> list[list[int]]:
    """The row ids of each write of outcomes, in order."""
    groups: list[list[int]] = []
    commit = store._settling._commit

    async def noted(batch: Sequence[Settlement]) -> list[Recording]:
        groups.append([s.row_id for s in batch])
        return await commit(batch)

    store._settling._commit = noted  # type: ignore[method-assign]
    return groups


async def deliver_to_answering(
    store: SqliteStore, seconds: float, count: int
) -> tuple[Answering, list[list[int]]]:
    """`count` messages delivered in order to a chat answering in `seconds`; the chat, and the
    outbox ids of each write of outcomes."""
    groups = outcome_writes(store)
    chat = Answering(seconds, groups)
    await enqueue(store, count)
    worker = Worker(store, {"alerts": chat}, random=lambda: 0.0, pacing=UNPACED)
    await deliver_all(worker, store, count)
    assert chat.texts == [f"message {i}" for i in range(count)]
    return chat, groups


async def test_a_chat_that_answers_at_once_gets_its_outcomes_written_a_few_at_a_time(
    store: SqliteStore,
) -> None:
    # each write costs a transaction whatever it holds: outcomes coming every few milliseconds
    # go in groups of up to UNRECORDED, not one write per message
    _chat, groups = await deliver_to_answering(store, 0.002, 24)
    written = [row_id for group in groups for row_id in group]
    assert written == sorted(written) and len(written) == 24
    assert len(groups) <= 8, groups
    assert max(len(g) for g in groups) <= 8


async def test_a_slow_chat_gets_each_outcome_written_once_it_answers(store: SqliteStore) -> None:
    # slower than RECORD_WAIT: nothing waits for company, so a crash would resend nothing of
    # what was answered before the send in flight
    chat, groups = await deliver_to_answering(store, 0.06, 5)
    assert [len(g) for g in groups] == [1] * 5
    assert chat.written_before == [0, 1, 2, 3, 4]
