"""The durable store: seen event ids (dedup), the inbox of accepted events, the outbox of
rendered messages, pacing, and conversation state (which key is which chat message; digest
groups and their waiting items).

`interface` is the `Store` the rest of relay uses and the operations it runs; `sql` is their
logic, written once; `schema` the tables, for both dialects; `sqlite` and `postgres` the two
backends, holding only their connections, locking and dialect; `intake` the group commit of
accepted events. `open_store` picks the backend `RELAY_DATABASE_URL` names:
unset or `sqlite:...` (or a path): SQLite, one process; `postgresql://...`: PostgreSQL, safe for
several replicas at once.
"""

from __future__ import annotations

from pathlib import Path

from relay.store.interface import Store
from relay.store.postgres import PostgresStore, is_postgres_url
from relay.store.sqlite import SqliteStore, sqlite_path


def open_store(url: str | None, cwd: Path) -> Store:
    """The backend `RELAY_DATABASE_URL` names (not yet opened)."""
    if url and is_postgres_url(url):
        return PostgresStore(url)
    return SqliteStore(sqlite_path(url, cwd))


__all__ = ["PostgresStore", "SqliteStore", "Store", "open_store"]
