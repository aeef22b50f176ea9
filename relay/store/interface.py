"""The store interface, and `SqlStore`: that interface over the shared logic of the store's modules.

What the pipeline, the worker and the operator commands need from a database:
- `receive` is the acknowledgement path: the event id (dedup) and the event, durably, before the
  2xx. The receives of one turn of the event loop are committed together (`GroupCommit`).
- `inbox` and `enqueue` are the router's: the oldest waiting events, then their rendered
  messages written to the outbox in the transaction that takes them out of the inbox.
  `lead_routing` says whether this process may route now (one process at a time, by lease).
- `claim` gives the worker the due heads of their channels that pacing allows, claimed in this
  process's name (`holder`) with a lease, with the conversation messages each needs; `settle`
  records what the attempts came to, many at once, only on rows this process still holds.
  `beat` says this process is alive: the claims of a replica whose heartbeat is stale are
  released by `release_expired` before their lease (relay.delivery.heartbeat has the argument
  and the fence that make that safe). `release_orphans` runs at start-up and frees only claims
  no live worker holds.

A backend (SQLite, PostgreSQL) provides the transaction runner `_run` (and `_hot`, for the
transactions every event goes through, where a backend may take a faster path), opening and
migrating, and the two questions whose answers are its own (`last_seq`,
`release_orphans`); everything else is the shared logic.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from relay.event import Event, to_record
from relay.records import (
    Acceptance,
    ClaimRound,
    DestinationStats,
    DigestBatch,
    InboxStats,
    NewMessage,
    OutboxRow,
    Received,
    Recording,
    Routed,
    Settlement,
    Status,
)
from relay.silences.model import Silence
from relay.store import claims, digests, inbox, interactions, logins, outbox, queries, upkeep
from relay.store import silences as silence_rows
from relay.store.db import Db
from relay.store.groups import GroupCommit
from relay.store.interactions import SentRow
from relay.store.schema import Dialect
from relay.store.views import DeadLetter, EventDetail, EventFilter, EventSummary, Page, Window

T = TypeVar("T")

# A process whose heartbeat is older than this is presumed dead and its claims are released
# (relay.delivery.heartbeat keeps the heartbeat and the fence that make that safe)
STALE_AFTER = 5.0


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits, each counted up to a bound: events to route, messages that could be sent now
    (the router's flow control reads it)."""

    inbox: int
    outbox: int


class Store(Protocol):
    """The store as the rest of relay sees it."""

    async def open(self) -> None: ...
    async def migrate(self) -> int: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool: ...
    async def receive(self, event: Event, now: float) -> Acceptance: ...
    async def seen(self, source: str, event_id: str) -> bool: ...
    async def lead_routing(self, holder: str, now: float, seconds: float) -> bool: ...
    async def release_routing(self, holder: str) -> None: ...
    async def inbox(self, limit: int) -> list[Received]: ...
    async def last_seq(self) -> int: ...
    async def enqueue(self, planned: Sequence[Routed], now: float | None = None) -> set[int]: ...
    async def inbox_stats(self) -> InboxStats: ...
    async def claim(
        self,
        now: float,
        lease_until: float,
        *,
        rate: float,
        burst: float,
        limit: int,
        busy: Collection[str] = (),
        paces: Mapping[str, tuple[float, float]] | None = None,
        run: int = 1,
    ) -> ClaimRound: ...
    async def settle(self, settlement: Settlement) -> Recording: ...
    async def unclaim(self, row_ids: Sequence[int]) -> int: ...
    async def backlog(self, now: float, limit: int) -> Backlog: ...
    async def next_due_at(self) -> float | None: ...
    async def release_expired(self, now: float) -> int: ...
    async def beat(self) -> None: ...
    async def release_orphans(self, now: float) -> int: ...
    async def due_digests(self, now: float) -> list[DigestBatch]: ...
    async def next_digest_at(self) -> float | None: ...
    async def flush_digest(
        self, batch: DigestBatch, message: NewMessage | None, now: float
    ) -> None: ...
    async def prune(self, now: float, dedup_ttl: float, keep_sent: float) -> tuple[int, int]: ...
    async def stats(self) -> list[DestinationStats]: ...
    async def rows(self, status: Status, limit: int = 1000) -> list[OutboxRow]: ...
    async def replay_dead(self, ids: Sequence[int] | None, now: float) -> int: ...
    async def drop_dead(self, ids: Sequence[int] | None) -> int: ...
    async def prune_history(self, before: float, limit: int) -> int: ...
    async def history_events(
        self, f: EventFilter, before: int | None, limit: int
    ) -> Page[EventSummary]: ...
    async def history_event(self, seq: int) -> EventDetail | None: ...
    async def history_dead(
        self, f: EventFilter, before: int | None, limit: int
    ) -> Page[DeadLetter]: ...
    async def dead_ids(self, f: EventFilter) -> list[int]: ...
    async def overview(self, since: Sequence[float]) -> list[Window]: ...
    async def add_messages(
        self, seq: int, messages: Sequence[NewMessage], routes: Sequence[str], now: float
    ) -> int: ...
    async def add_silence(self, silence: Silence) -> None: ...
    async def silence(self, silence_id: str) -> Silence | None: ...
    async def silences(self, since: float | None = None) -> list[Silence]: ...
    async def expire_silence(self, silence_id: str, now: float) -> Silence | None: ...
    async def recent_rows(self, limit: int) -> list[OutboxRow]: ...
    async def sent_row(self, row_id: int) -> SentRow | None: ...
    async def first_use(self, mark: str, now: float, forget_before: float) -> bool: ...
    async def login_failures(self, client: str, since: float, limit: int) -> list[float]: ...
    async def login_failed(self, client: str, now: float, forget_before: float) -> None: ...
    async def login_succeeded(self, client: str) -> None: ...


class SqlStore:
    """The operations of `Store`, each one transaction of the shared logic."""

    dialect: Dialect

    def __init__(self, *, stale_after: float = STALE_AFTER) -> None:
        self.holder = uuid.uuid4().hex  # this process, in the claims it makes
        # whose heartbeat is older than this is presumed dead (relay.delivery.heartbeat)
        self.stale_after = stale_after
        self._intake = GroupCommit(self._commit_intake)
        # until when this process holds the routing lease, by holder (as `lead_routing` wrote it)
        self._routing_until: dict[str, float] = {}
        self._settling = GroupCommit(self._commit_settlements)

    async def _run(self, fn: Callable[[Db], T], *, read_only: bool = False) -> T:
        """Run `fn` in one transaction on this backend's connections."""
        raise NotImplementedError

    async def _hot(self, fn: Callable[[Db], T], *, read_only: bool = False) -> T:
        """Run `fn` in one transaction: one of the few small ones every event goes through."""
        return await self._run(fn, read_only=read_only)

    async def _drain_groups(self) -> None:
        """Wait for the groups being committed (before closing)."""
        await self._intake.drain()
        await self._settling.drain()

    async def _commit_intake(self, batch: Sequence[inbox.Incoming]) -> list[Acceptance]:
        """Commit one group of receives."""
        return await self._hot(functools.partial(inbox.receive_all, batch=batch))

    # ------------------------------------------------------------ intake and routing

    async def receive(self, event: Event, now: float) -> Acceptance:
        """Record the event id and put the event in the inbox; DUPLICATE if seen before.
        Returns once the group this receive joined has committed."""
        return await self._intake.submit((event, to_record(event), now))

    async def seen(self, source: str, event_id: str) -> bool:
        return await self._run(lambda db: inbox.seen(db, source, event_id), read_only=True)

    async def lead_routing(self, holder: str, now: float, seconds: float) -> bool:
        """Take or renew the routing lease. The router asks before each batch: while less than
        half of the lease this process last wrote has gone, no one else can take it, and the
        answer is yes without a transaction (one fewer per batch, `bench/store.py`)."""
        if now < self._routing_until.get(holder, now) - seconds / 2:
            return True
        led = await self._hot(lambda db: inbox.lead_routing(db, holder, now, seconds))
        if led:
            self._routing_until[holder] = now + seconds
        else:
            self._routing_until.pop(holder, None)
        return led

    async def release_routing(self, holder: str) -> None:
        self._routing_until.pop(holder, None)
        await self._run(lambda db: inbox.release_routing(db, holder))

    async def inbox(self, limit: int) -> list[Received]:
        return await self._hot(lambda db: inbox.inbox(db, limit), read_only=True)

    async def enqueue(self, planned: Sequence[Routed], now: float | None = None) -> set[int]:
        """`now`: when they were routed, for history (default: when they were received)."""
        return await self._hot(lambda db: inbox.enqueue(db, planned, now))

    async def inbox_stats(self) -> InboxStats:
        return await self._run(inbox.inbox_stats, read_only=True)

    # ------------------------------------------------------------ delivery

    async def claim(
        self,
        now: float,
        lease_until: float,
        *,
        rate: float,
        burst: float,
        limit: int,
        busy: Collection[str] = (),
        paces: Mapping[str, tuple[float, float]] | None = None,
        run: int = 1,
    ) -> ClaimRound:
        return await self._hot(
            lambda db: claims.claim(
                db, self.holder, now, lease_until, rate, burst, limit, busy, paces or {}, run
            )
        )

    async def settle(self, settlement: Settlement) -> Recording:
        """Record one attempt's outcome (only on a row this process still holds); the outcomes
        of one turn of the event loop are written in one transaction."""
        return await self._settling.submit(settlement)

    async def unclaim(self, row_ids: Sequence[int]) -> int:
        """Claimed messages this process did not send go back to pending, uncounted."""
        return await self._hot(lambda db: outbox.unclaim(db, self.holder, row_ids))

    async def _commit_settlements(self, batch: Sequence[Settlement]) -> list[Recording]:
        return await self._hot(lambda db: outbox.settle(db, self.holder, batch))

    async def backlog(self, now: float, limit: int) -> Backlog:
        """Events waiting to be routed and messages that could be sent now, each up to
        `limit`."""
        # Not `_hot`: a count walks up to `limit` rows, 20 times a second under load, and on the
        # loop's thread (SQLite) it took intake's time: bench/ingest.py gave 60-71% of the bare
        # handler with it there, 78-84% with it here (bench/e2e.py: no difference measured).
        return await self._run(
            lambda db: Backlog(inbox.waiting(db, limit), outbox.sendable(db, now, limit)),
            read_only=True,
        )

    async def next_due_at(self) -> float | None:
        # a walk over every channel's head, as `backlog` counts: not `_hot`
        return await self._run(outbox.next_due_at, read_only=True)

    async def release_expired(self, now: float) -> int:
        """Claims whose lease ran out, or whose holder's heartbeat is stale, back to pending."""
        return await self._run(lambda db: outbox.release_expired(db, now, self.stale_after))

    async def beat(self) -> None:
        """This process is alive now (replicas release the claims of one that stopped)."""
        await self._run(lambda db: outbox.beat(db, self.holder))

    # ------------------------------------------------------------ digests

    async def due_digests(self, now: float) -> list[DigestBatch]:
        return await self._hot(lambda db: digests.due_digests(db, now), read_only=True)

    async def next_digest_at(self) -> float | None:
        return await self._hot(digests.next_digest_at, read_only=True)

    async def flush_digest(
        self, batch: DigestBatch, message: NewMessage | None, now: float
    ) -> None:
        # another replica may have posted this batch first: its transaction is the one that counts
        with contextlib.suppress(digests.AlreadyFlushed):
            await self._run(lambda db: digests.flush_digest(db, batch, message, now))

    # ------------------------------------------------------------ housekeeping and reports

    async def prune(self, now: float, dedup_ttl: float, keep_sent: float) -> tuple[int, int]:
        return await self._run(lambda db: upkeep.prune(db, now, dedup_ttl, keep_sent))

    async def stats(self) -> list[DestinationStats]:
        # one snapshot for both queries: a digest moving into the outbox in between must not
        # look like nothing waiting anywhere
        return await self._run(upkeep.stats, read_only=True)

    async def rows(self, status: Status, limit: int = 1000) -> list[OutboxRow]:
        return await self._run(lambda db: upkeep.rows(db, status, limit), read_only=True)

    async def replay_dead(self, ids: Sequence[int] | None, now: float) -> int:
        return await self._run(lambda db: upkeep.replay_dead(db, ids, now))

    async def drop_dead(self, ids: Sequence[int] | None) -> int:
        return await self._run(lambda db: upkeep.drop_dead(db, ids))

    # ------------------------------------------------------------ history

    async def prune_history(self, before: float, limit: int) -> int:
        """Forget up to `limit` of the events received before `before` (bounded work)."""
        return await self._run(lambda db: upkeep.prune_history(db, before, limit))

    async def history_events(
        self, f: EventFilter, before: int | None, limit: int
    ) -> Page[EventSummary]:
        return await self._run(lambda db: queries.events(db, f, before, limit), read_only=True)

    async def history_event(self, seq: int) -> EventDetail | None:
        return await self._run(lambda db: queries.event(db, seq), read_only=True)

    async def history_dead(
        self, f: EventFilter, before: int | None, limit: int
    ) -> Page[DeadLetter]:
        return await self._run(lambda db: queries.dead(db, f, before, limit), read_only=True)

    async def dead_ids(self, f: EventFilter) -> list[int]:
        return await self._run(lambda db: queries.dead_ids(db, f), read_only=True)

    async def overview(self, since: Sequence[float]) -> list[Window]:
        """The overview's figures for each start time, from one snapshot."""
        return await self._run(lambda db: [queries.window(db, s) for s in since], read_only=True)

    async def add_messages(
        self, seq: int, messages: Sequence[NewMessage], routes: Sequence[str], now: float
    ) -> int:
        """Queue more messages of an event in history (a resend, a reroute); how many."""
        return await self._run(lambda db: inbox.add_messages(db, seq, messages, routes, now))

    # ------------------------------------------------------------ silences

    async def add_silence(self, silence: Silence) -> None:
        await self._run(lambda db: silence_rows.add(db, silence))

    async def silence(self, silence_id: str) -> Silence | None:
        return await self._run(lambda db: silence_rows.get(db, silence_id), read_only=True)

    async def silences(self, since: float | None = None) -> list[Silence]:
        """Silences ending after `since` (None: all kept, expired ones too), newest first."""
        return await self._hot(lambda db: silence_rows.ending_after(db, since), read_only=True)

    async def expire_silence(self, silence_id: str, now: float) -> Silence | None:
        return await self._run(lambda db: silence_rows.expire(db, silence_id, now))

    async def recent_rows(self, limit: int) -> list[OutboxRow]:
        return await self._run(lambda db: silence_rows.recent(db, limit), read_only=True)

    # ------------------------------------------------------------ Slack interactivity

    async def sent_row(self, row_id: int) -> SentRow | None:
        """An outbox row and where the chat holds its message (a button click names the row)."""
        return await self._run(lambda db: interactions.sent_row(db, row_id), read_only=True)

    async def first_use(self, mark: str, now: float, forget_before: float) -> bool:
        """Record a verified request's signature; False when it was seen already (a replay)."""
        return await self._run(lambda db: interactions.first_use(db, mark, now, forget_before))

    # ------------------------------------------------------------ the console's login throttle

    async def login_failures(self, client: str, since: float, limit: int) -> list[float]:
        """When `client`'s latest failed logins after `since` were, at most `limit`."""
        return await self._run(lambda db: logins.failures(db, client, since, limit), read_only=True)

    async def login_failed(self, client: str, now: float, forget_before: float) -> None:
        await self._run(lambda db: logins.failed(db, client, now, forget_before))

    async def login_succeeded(self, client: str) -> None:
        await self._run(lambda db: logins.succeeded(db, client))
