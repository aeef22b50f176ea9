"""The store interface every backend implements, and the choice of backend from the URL.

`RELAY_DATABASE_URL` unset or `sqlite:...` (or a path): `SqliteStore`, one process.
`postgresql://...` / `postgres://...`: `PostgresStore`, safe for several replicas at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from relay.event import Event
from relay.pacing import Pacer
from relay.store import (
    Acceptance,
    Claim,
    DestinationStats,
    DigestBatch,
    InboxStats,
    MessageRef,
    NewMessage,
    OutboxRow,
    Received,
    Recording,
    SqliteStore,
    Status,
    sqlite_path,
)


class Store(Protocol):
    """What the pipeline, the worker and the operator commands need from a database.

    `receive` is the acknowledgement path: the event id (dedup) and the event, durably, before
    the 2xx. `inbox` and `enqueue` are the router's: the oldest waiting events, then their
    rendered messages written to the outbox in the same transaction that takes the events out
    of the inbox. `lead_routing` says whether this process may route now (always, for SQLite;
    one replica at a time, by lease, for PostgreSQL).

    `claim_head` is how the worker takes a message to send: the row must still be its key's
    head and due, and the key's budget must allow it; the budget is `pacer` itself for SQLite
    (one process) and a row shared by all replicas for PostgreSQL (`pacer` gives only the rate
    and burst). `release_orphans` runs at start-up and frees only claims no live worker holds.

    A claim records which process made it, and `beat` says that process is alive: on
    PostgreSQL, the claims of a replica whose last beat is stale are released by
    `release_expired_leases` before their lease (relay.heartbeat keeps the beat and the fence
    that make that safe); `mark_sent`, `mark_retry` and `mark_dead` write only on a row that is
    still this process's claim (`Recording.LOST` otherwise). One SQLite process holds every
    claim: `beat` does nothing and an outcome is always its own.
    """

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
    async def enqueue(
        self, planned: Sequence[tuple[Received, Sequence[NewMessage]]]
    ) -> set[int]: ...
    async def inbox_stats(self) -> InboxStats: ...
    async def due_heads(self, now: float) -> list[OutboxRow]: ...
    async def claim(self, row_id: int, lease_until: float) -> bool: ...
    async def claim_head(
        self, row: OutboxRow, now: float, lease_until: float, pacer: Pacer
    ) -> Claim: ...
    async def beat(self) -> None: ...
    async def pause_key(self, key: str, now: float, seconds: float, pacer: Pacer) -> None: ...
    async def next_due_at(self) -> float | None: ...
    async def mark_sent(
        self,
        row_id: int,
        channel_id: str | None,
        ts: str | None,
        now: float,
        *,
        reason: str = "ok",
    ) -> Recording: ...
    async def mark_retry(
        self, row_id: int, next_attempt_at: float, reason: str, error: str | None
    ) -> Recording: ...
    async def mark_dead(
        self, row_id: int, reason: str, error: str | None, now: float
    ) -> Recording: ...
    async def release_expired_leases(self, now: float) -> int: ...
    async def release_orphans(self, now: float) -> int: ...
    async def get_message(self, pace_key: str, key: str, now: float) -> MessageRef | None: ...
    async def put_message(
        self, pace_key: str, key: str, ref: MessageRef, expires_at: float
    ) -> None: ...
    async def touch_message(
        self,
        pace_key: str,
        key: str,
        *,
        order_at: float | None,
        count: int | None,
        now: float,
        expires_at: float | None = None,
    ) -> None: ...
    async def forget_message(self, pace_key: str, key: str) -> None: ...
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


def open_store(url: str | None, cwd: Path) -> Store:
    """The backend `RELAY_DATABASE_URL` names (not yet opened)."""
    from relay.store_pg import PostgresStore, is_postgres_url

    if url and is_postgres_url(url):
        return PostgresStore(url)
    return SqliteStore(sqlite_path(url, cwd))
