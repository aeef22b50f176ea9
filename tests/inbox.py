"""Store test helper: accept an event with its messages already planned, as the router would."""

from __future__ import annotations

from collections.abc import Sequence

from relay.event import Event
from relay.records import Acceptance, NewMessage, Routed
from relay.store import Store


async def accept(
    store: Store, event: Event, messages: Sequence[NewMessage], now: float
) -> Acceptance:
    """`receive` the event, then `enqueue` `messages` for it (received at `now`)."""
    result = await store.receive(event, now)
    if result is Acceptance.ACCEPTED:
        mine = [
            r
            for r in await store.inbox(100_000)
            if (r.event.source, r.event.id) == (event.source, event.id)
        ]
        await store.enqueue([Routed(mine[0], tuple(messages))])
    return result
