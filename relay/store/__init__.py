"""The durable store: seen event ids (dedup), the inbox of accepted events, the outbox of
rendered messages, pacing, conversation state (which key is which chat message; digest
groups and their waiting items), and silences.

`interface` is the `Store` the rest of relay uses and the operations it runs; their logic is
written once, as functions of a `db.Db`: `inbox` (accepting, routing into the outbox), `claims`
(what the worker sends next), `outbox` (outcomes, heartbeats), `digests`, `upkeep` (pruning,
reports), `silences`; `schema` holds the tables for both dialects; `sqlite` and `postgres` are
the two backends, holding only their connections, locking and dialect; `groups` commits what
arrives in one turn of the event loop together. `open_store` picks the backend
`RELAY_DATABASE_URL` names: unset or `sqlite:...` (or a path): SQLite, one process;
`postgresql://...`: PostgreSQL, safe for several replicas at once.

Safety across PostgreSQL replicas comes from the statements themselves: dedup is the `events`
primary key (`ON CONFLICT DO NOTHING`); a claim takes a row only while it is still pending, due
and its channel's head, and spends the channel's pacing token (a `pace` row taken with
`SKIP LOCKED`) in the same transaction; the transaction that enqueues an event deletes it from
the inbox, so it is enqueued once; a digest group is flushed under its row lock; an outcome is
written only on a row its writer still holds. On SQLite one writer at a time gives the same
guarantees.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from relay.store.interface import Store
from relay.store.sqlite import SqliteStore, sqlite_path

if TYPE_CHECKING:
    from relay.store.postgres import PostgresStore


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


def open_store(url: str | None, cwd: Path) -> Store:
    """The backend `RELAY_DATABASE_URL` names (not yet opened)."""
    if url and is_postgres_url(url):
        from relay.store.postgres import PostgresStore

        return PostgresStore(url)
    return SqliteStore(sqlite_path(url, cwd))


def __getattr__(name: str) -> Any:
    # psycopg and its pool take about 9 MB of memory once imported: a process on SQLite
    # (relay serve and its delivery process alike) never imports them
    if name == "PostgresStore":
        from relay.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PostgresStore", "SqliteStore", "Store", "open_store"]
