"""Tabstack stream limits (`relay.runs.consume_stream`): a stream bigger or longer than its
source allows is cut with `413`, also one that stalls and sends nothing, and the run's end is
still told."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from relay.errors import PayloadTooLarge
from relay.event import Event
from relay.http.streams import StreamLimits, consume_stream
from relay.providers.tabstack.provider import TabstackProvider
from relay.records import Acceptance

START = b'event: start\ndata: {"task": "Find the price", "url": "https://shop.example"}\n\n'
STEP = b'event: agent:step\ndata: {"iterationId": "it1", "currentIteration": 1}\n\n'


class Recorder:
    """Stands in for the pipeline: keeps what it was given to accept."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def accept(self, event: Event) -> Acceptance:
        self.events.append(event)
        return Acceptance.ACCEPTED


async def consume(chunks: AsyncIterator[bytes], limits: StreamLimits) -> Recorder:
    recorder = Recorder()
    await consume_stream(
        chunks,
        run_id="run_limits",
        provider=TabstackProvider("tabstack", "token"),
        pipeline=recorder,  # type: ignore[arg-type]
        limits=limits,
    )
    return recorder


async def test_a_stream_that_stalls_is_cut_at_its_duration_and_the_run_ends() -> None:
    recorder = Recorder()

    async def stalls() -> AsyncIterator[bytes]:
        yield START
        await asyncio.sleep(3600)  # connected, sending nothing
        yield STEP

    started = time.monotonic()
    with pytest.raises(PayloadTooLarge, match=r"^stream exceeded 0.3 seconds$"):
        await consume_stream(
            stalls(),
            run_id="run_stalled",
            provider=TabstackProvider("tabstack", "token"),
            pipeline=recorder,  # type: ignore[arg-type]
            limits=StreamLimits(max_seconds=0.3),
        )
    assert time.monotonic() - started < 5
    assert [e.type for e in recorder.events] == ["run.started", "run.failed"]
    assert recorder.events[-1].data["outcome"] == "incomplete"


async def test_a_stream_that_keeps_talking_is_cut_at_its_duration() -> None:
    async def chatty() -> AsyncIterator[bytes]:
        yield START
        while True:
            await asyncio.sleep(0.05)
            yield STEP

    with pytest.raises(PayloadTooLarge, match=r"^stream exceeded 0.3 seconds$"):
        await consume(chatty(), StreamLimits(max_seconds=0.3))


async def test_a_stream_over_its_size_is_cut_and_the_run_ends() -> None:
    recorder = Recorder()

    async def big() -> AsyncIterator[bytes]:
        yield START
        while True:
            yield STEP

    with pytest.raises(PayloadTooLarge, match=r"^stream exceeded 10000 bytes$"):
        await consume_stream(
            big(),
            run_id="run_big",
            provider=TabstackProvider("tabstack", "token"),
            pipeline=recorder,  # type: ignore[arg-type]
            limits=StreamLimits(max_bytes=10_000),
        )
    assert [e.type for e in recorder.events] == ["run.started", "run.failed"]
