"""Tabstack runs: turn one Server-Sent Events stream into the run's story and feed the pipeline.

A stream arrives either piped into `POST /hooks/<tabstack source>` or from relay calling
`POST {base}/automate` itself (`POST /runs/<source>`). Either way each SSE event is decoded as it
arrives, folded by `RunStory`, and only the story events (run started, run finished) are accepted
into the pipeline; the noisy agent/system events are counted, not posted.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from relay.errors import MalformedRequest, PayloadTooLarge
from relay.pipeline import Pipeline
from relay.providers.tabstack.provider import TabstackProvider
from relay.providers.tabstack.sse import SSEDecoder
from relay.providers.tabstack.story import RunStory

log = logging.getLogger("relay.runs")


@dataclass(frozen=True, slots=True)
class StreamLimits:
    max_bytes: int = 64 * 1024 * 1024
    max_seconds: float = 3600.0
    progress_every: float | None = None


@dataclass(frozen=True, slots=True)
class StreamSummary:
    run_id: str
    raw_events: int
    story_events: int


def new_run_id() -> str:
    return "run_" + uuid.uuid4().hex[:16]


async def consume_stream(
    chunks: AsyncIterator[bytes],
    *,
    run_id: str,
    provider: TabstackProvider,
    pipeline: Pipeline,
    limits: StreamLimits = StreamLimits(),
    clock: Callable[[], float] = time.monotonic,
) -> StreamSummary:
    """Decode, fold and accept a whole stream; the run's end is emitted even if it breaks off.

    `limits.max_seconds` bounds the whole stream, also while it sends nothing at all: a stalled
    sender (or Tabstack) cannot hold a connection and a run open forever."""
    decoder = SSEDecoder()
    story = RunStory(run_id, progress_every=limits.progress_every, clock=clock)
    deadline = clock() + limits.max_seconds
    too_long = f"stream exceeded {limits.max_seconds:g} seconds"
    size = raw = posted = 0
    stream = aiter(chunks)
    try:
        while True:
            try:
                # only the wait for the next chunk is timed out, never a pipeline write
                async with asyncio.timeout(max(0.0, deadline - clock())):
                    chunk = await anext(stream)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise PayloadTooLarge(too_long) from None
            size += len(chunk)
            if size > limits.max_bytes:
                raise PayloadTooLarge(f"stream exceeded {limits.max_bytes} bytes")
            if clock() > deadline:
                raise PayloadTooLarge(too_long)
            for name, data, _last_id in decoder.feed(chunk):
                event = provider.event_from_sse(run_id, raw, name, data)
                raw += 1
                for told in story.feed(event):
                    await pipeline.accept(told)
                    posted += 1
    finally:
        # the end of the run is told even when the stream broke off or hit a limit
        for told in story.finish():
            await pipeline.accept(told)
            posted += 1
    return StreamSummary(run_id, raw, posted)


class RunStartFailed(Exception):
    """Tabstack refused to start the run (its HTTP status and error, never the API key)."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"Tabstack answered {status}: {detail}")


async def start_run(
    *,
    client: httpx.AsyncClient,
    base_url: str,
    api_key: str,
    request: dict[str, Any],
    run_id: str,
    provider: TabstackProvider,
    pipeline: Pipeline,
    limits: StreamLimits,
) -> asyncio.Task[StreamSummary]:
    """POST {base}/automate; once the stream has started, consume it in a background task."""
    if not isinstance(request.get("task"), str) or not request["task"].strip():
        raise MalformedRequest("body needs a non-empty string `task`")
    http_request = client.build_request(
        "POST",
        base_url.rstrip("/") + "/automate",
        json=request,
        headers={"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream"},
    )
    response = await client.send(http_request, stream=True)
    if response.status_code != 200:
        body = (await response.aread())[:500].decode("utf-8", "replace")
        await response.aclose()
        raise RunStartFailed(response.status_code, body)

    async def run() -> StreamSummary:
        try:
            summary = await consume_stream(
                response.aiter_bytes(),
                run_id=run_id,
                provider=provider,
                pipeline=pipeline,
                limits=limits,
            )
            log.info(
                "tabstack run finished", extra={"run_id": run_id, "raw_events": summary.raw_events}
            )
            return summary
        except (httpx.HTTPError, PayloadTooLarge, MalformedRequest) as exc:
            log.warning("tabstack stream ended early", extra={"run_id": run_id, "detail": str(exc)})
            return StreamSummary(run_id, -1, -1)
        finally:
            await response.aclose()

    return asyncio.create_task(run(), name=f"tabstack-run-{run_id}")
