"""Writing a run's outcomes while it goes on: in order, a few at a time, never far behind.

A worker's run sends a channel's messages one after another; what came of each must be written
before the channel's next claim can pass it (head-of-line order), and as soon as it can be,
since a crash resends what was sent but not written. A write costs a transaction whatever it
holds (`bench/store.py`'s settle phase: about 490 µs of CPU per outcome written alone, 90 µs
in writes of 32), so a chat that answers within milliseconds must not get one per message.
`Recorder` writes while the next messages go out, each write once the one before it has
committed, and a write takes:

* what waited RECORD_WAIT, or UNRECORDED outcomes, or
* the outcome of a send slower than RECORD_WAIT (the next one would come too late to join:
  with such a chat each outcome is written once it answers), or
* at the run's end, what is left.

At most UNRECORDED outcomes wait behind a write in flight: a crash resends no more than that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

UNRECORDED = 8  # outcomes of a run sent but not yet written, at most (behind a write)
RECORD_WAIT = 0.02  # seconds an outcome waits for company before it is written

Outcome = TypeVar("Outcome")


class Recorder(Generic[Outcome]):
    """Outcomes of one run, written by `write` (True unless one of them was LOST: another
    replica took its message over, and the run must stop)."""

    def __init__(self, write: Callable[[list[Outcome]], Awaitable[bool]]) -> None:
        self._write = write
        self._waiting: list[Outcome] = []
        self._writing: asyncio.Future[bool] | None = None
        self._oldest = 0.0  # when the first outcome now waiting came (monotonic)
        self.kept = True

    async def add(self, outcome: Outcome, took: float) -> bool:
        """The outcome of a send that took `took` seconds; False once a write found one LOST
        (what waits then is not written)."""
        now = time.monotonic()
        if not self._waiting:
            self._oldest = now
        self._waiting.append(outcome)
        writing = self._writing
        if writing is not None and (writing.done() or len(self._waiting) >= UNRECORDED):
            self._writing = None
            self.kept = await writing
            if not self.kept:
                return False
        due = len(self._waiting) >= UNRECORDED or now - self._oldest >= RECORD_WAIT
        if self._writing is None and (due or took >= RECORD_WAIT):
            self._writing = asyncio.ensure_future(self._write(self._waiting))
            self._waiting = []
        return True

    async def finish(self) -> bool:
        """The run ended: wait for the write in flight, then write what is left; False if an
        outcome was LOST."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            self.kept = await writing
        if self._waiting and self.kept:
            waiting, self._waiting = self._waiting, []
            self.kept = await self._write(waiting)
        return self.kept
