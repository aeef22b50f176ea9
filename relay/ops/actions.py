"""What an operator does to an event history holds: send it again to one destination, or route
it again under the config now in force. Plain functions over the running relay, for the JSON
API and the console's pages alike; the messages are queued like any other (the worker sends
them at the channel's pace) and recorded in the event's history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from relay.planning import plan
from relay.records import NewMessage
from relay.runtime import Runtime
from relay.store import Store
from relay.trace import explain


class UnknownDestination(LookupError):
    """The destination named is not in the config in force."""


@dataclass(frozen=True, slots=True)
class Queued:
    """What an action queued: how many messages, where, and why (the routing explanation)."""

    count: int
    destinations: tuple[str, ...]
    explanation: tuple[str, ...] = ()


async def resend(
    runtime: Runtime, store: Store, seq: int, destination: str, now: float | None = None
) -> Queued | None:
    """The event rendered again for `destination` (as its route renders it there, else with
    the default template) and posted as a new message; None when history does not hold it."""
    if destination not in runtime.config.destinations:
        raise UnknownDestination(destination)
    detail = await store.history_event(seq)
    if detail is None:
        return None
    now = time.time() if now is None else now
    planned = plan(runtime, detail.event, now)
    chosen = next((m for m in planned.messages if m.destination == destination), None)
    if chosen is None:
        rendered = runtime.renderer.render(detail.event)
        chosen = NewMessage(
            destination, runtime.pace_keys[destination], rendered.template, rendered.message
        )
    # a new post: no conversation step (it would edit or thread onto what was posted),
    # neither muted nor held for a digest
    message = replace(chosen, step=None, muted=False, group=None)
    count = await store.add_messages(seq, [message], ["resend"], now)
    return Queued(count, (destination,)) if count else None


async def reroute(
    runtime: Runtime, store: Store, seq: int, now: float | None = None
) -> Queued | None:
    """The event routed and rendered again under `runtime`, its messages queued as routing
    makes them; None when history does not hold it."""
    detail = await store.history_event(seq)
    if detail is None:
        return None
    now = time.time() if now is None else now
    planned = plan(runtime, detail.event, now)
    await store.add_messages(seq, planned.messages, planned.routes, now)
    return Queued(
        len(planned.messages),
        tuple(m.destination for m in planned.messages),
        tuple(explain(runtime, detail.event, planned.decision)),
    )
