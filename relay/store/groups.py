"""Group commit of accepted events: the receives of one turn of the event loop, one transaction.

Acknowledging an event means committing it first; committing each request on its own would cap
intake at the disk's (or the database's) commit rate. `GroupCommit` collects every receive made
during one turn of the event loop and commits them together; each caller returns once its
group committed. A group that fails is committed again one receive at a time, so a request that
cannot be stored fails alone and never takes the others of its group down with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Batches `submit`ted items per loop turn into calls of `commit` (which returns one result
    per item, in order)."""

    def __init__(self, commit: Callable[[Sequence[Item]], Awaitable[list[Result]]]) -> None:
        self._commit = commit
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._scheduled = False
        self._running: set[asyncio.Task[Any]] = set()

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._waiting = self._waiting, []
        task = asyncio.ensure_future(self._commit_group(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _commit_group(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._commit([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0][1], exc)
                return
            # one bad item must not fail the others: each on its own, so only it fails
            for entry in batch:
                await self._commit_alone(entry)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _commit_alone(self, entry: tuple[Item, asyncio.Future[Result]]) -> None:
        item, future = entry
        try:
            (result,) = await self._commit([item])
        except Exception as exc:
            _fail(future, exc)
            return
        if not future.done():
            future.set_result(result)

    async def drain(self) -> None:
        """Wait for the groups being committed (at shutdown)."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
