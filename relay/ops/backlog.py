"""The backlog per destination, as `relay outbox` prints it and the console's overview shows it:
the store's counts, every configured destination with nothing stored as zeros, and the events
accepted but not yet routed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from relay.records import DestinationStats, InboxStats
from relay.store import Store


@dataclass(frozen=True, slots=True)
class Backlog:
    destinations: list[DestinationStats]  # sorted by name
    inbox: InboxStats


async def backlog(store: Store, configured: Iterable[str] = ()) -> Backlog:
    stats = await store.stats()
    stored = {s.destination for s in stats}
    stats += [DestinationStats(name, 0, 0, 0, 0, None) for name in configured if name not in stored]
    stats.sort(key=lambda s: s.destination)
    return Backlog(stats, await store.inbox_stats())
