"""What history answers, as plain functions over the store with typed results: the JSON API
(`relay.http.api`) and the console's pages show the same things.

The filters come from a query string (`parse_filter`), checked here with errors that name the
parameter; each function reads one store snapshot. Nothing here shows a secret from the config:
a message's native payload is what its chat is sent (no webhook URL, no token), and where
relay knows the message in the chat it gives the channel and the message's id there, never a
link it would have to build. `prune` is the background pass that forgets what is older than
`store.history`, in bounded steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from relay.delivery.destinations import native
from relay.messages import message_from_json
from relay.records import DestinationStats, InboxStats
from relay.runtime import Runtime
from relay.store import Store
from relay.store.history import OUTCOMES
from relay.store.views import (
    DeadLetter,
    EventDetail,
    EventFilter,
    EventSummary,
    MessageView,
    Page,
    Window,
    decode_cursor,
)

DAY = 86400.0
MAX_LIMIT = 500
PRUNE_STEP = 1000  # events forgotten per transaction of the pruner
_FILTERS = ("source", "type", "outcome", "destination", "since", "until", "q")


class BadQuery(ValueError):
    """A parameter relay cannot take; the message names it and what was expected."""


def _time(name: str, value: str) -> float:
    """Epoch seconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(f"{name}: expected epoch seconds or an ISO 8601 time") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC).timestamp()
    return parsed.timestamp()


def parse_filter(params: Mapping[str, Any]) -> EventFilter:
    """The filter named by query parameters (or a JSON object): source, type (a glob),
    outcome, destination, since, until, q."""
    unknown = sorted(set(params) - set(_FILTERS) - {"cursor", "limit", "dry_run"})
    if unknown:
        raise BadQuery(f"{unknown[0]}: not a filter (expected one of {', '.join(_FILTERS)})")
    values: dict[str, Any] = {}
    for name in _FILTERS:
        value = params.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise BadQuery(f"{name}: expected a string")
        text = str(value)
        if name == "outcome" and text not in OUTCOMES:
            raise BadQuery(f"outcome: expected one of {', '.join(OUTCOMES)}")
        values[name] = _time(name, text) if name in ("since", "until") else text
    return EventFilter(**values)


def parse_page(params: Mapping[str, Any], default: int = 50) -> tuple[int | None, int]:
    """The cursor's key and the page size."""
    before = None
    cursor = params.get("cursor")
    if cursor:
        try:
            before = decode_cursor(str(cursor))
        except ValueError:
            raise BadQuery("cursor: not a cursor relay gave") from None
    raw = params.get("limit", default)
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise BadQuery(f"limit: expected a whole number from 1 to {MAX_LIMIT}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit: expected a whole number from 1 to {MAX_LIMIT}")
    return before, limit


async def events(
    store: Store, f: EventFilter, before: int | None, limit: int
) -> Page[EventSummary]:
    return await store.history_events(f, before, limit)


async def dead(store: Store, f: EventFilter, before: int | None, limit: int) -> Page[DeadLetter]:
    return await store.history_dead(f, before, limit)


@dataclass(frozen=True, slots=True)
class MessageShown:
    """A message of an event, with the payload its chat is sent (None when its destination is
    no longer configured) and where it is in the chat when relay knows it."""

    view: MessageView
    payload: Mapping[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        v = self.view
        found = {"channel_id": v.channel_id, "ts": v.ts} if v.ts else None
        body = asdict(v)
        body["attempts_timeline"] = body.pop("timeline")
        return {**body, "payload": self.payload, "in_chat": found}


async def event(
    store: Store, runtime: Runtime, seq: int
) -> tuple[EventDetail, list[MessageShown]] | None:
    """One event in full, with each message's native payload."""
    detail = await store.history_event(seq)
    if detail is None:
        return None
    shown = []
    for v in detail.messages:
        destination = runtime.config.destinations.get(v.destination)
        payload = None
        if destination is not None:
            payload = native(destination, message_from_json(v.message))
        shown.append(MessageShown(v, payload))
    return detail, shown


@dataclass(frozen=True, slots=True)
class Overview:
    now: float
    day: Window
    week: Window
    backlog: tuple[DestinationStats, ...]  # per destination, as `relay outbox` prints it
    inbox: InboxStats


async def overview(store: Store, runtime: Runtime | None, now: float) -> Overview:
    """The last 24 h and 7 d, and the backlog per destination (configured ones with nothing
    stored as zeros)."""
    day, week = await store.overview([now - DAY, now - 7 * DAY])
    stats = await store.stats()
    if runtime is not None:
        stored = {s.destination for s in stats}
        stats += [
            DestinationStats(name, 0, 0, 0, 0, None)
            for name in runtime.config.destinations
            if name not in stored
        ]
    stats.sort(key=lambda s: s.destination)
    return Overview(now, day, week, tuple(stats), await store.inbox_stats())


def window_json(w: Window) -> dict[str, Any]:
    by_source: dict[str, dict[str, int]] = {}
    for t in w.by_source:
        by_source.setdefault(t.key, {})[t.sub or ""] = t.count
    return {
        "since": w.since,
        "by_source": by_source,
        "per_hour": [{"hour": hour, "events": n} for hour, n in w.per_hour],
        "latency": {"p50": w.latency_p50, "p95": w.latency_p95},
        "busiest": {
            "types": [{"source": t.key, "type": t.sub, "events": t.count} for t in w.busiest_types],
            "destinations": [
                {"destination": t.key, "messages": t.count} for t in w.busiest_destinations
            ],
        },
        "failing": {
            "types": [{"source": t.key, "type": t.sub, "events": t.count} for t in w.failing_types],
            "destinations": [
                {"destination": t.key, "messages": t.count} for t in w.failing_destinations
            ],
        },
    }


def overview_json(o: Overview) -> dict[str, Any]:
    return {
        "now": o.now,
        "last_24h": window_json(o.day),
        "last_7d": window_json(o.week),
        "backlog": [asdict(s) for s in o.backlog],
        "inbox": asdict(o.inbox),
    }


def event_json(detail: EventDetail, shown: Sequence[MessageShown]) -> dict[str, Any]:
    return {
        "event": detail.summary.to_json(),
        "provider": detail.provider,
        "envelope": detail.envelope,
        "routing": detail.routing,
        "messages": [m.to_json() for m in shown],
    }


async def dead_targets(store: Store, ids: Sequence[int] | None, f: EventFilter | None) -> list[int]:
    """The dead letters an action takes: those of the ids named that are dead letters, or all
    that match the filter."""
    matching = await store.dead_ids(f or EventFilter())
    if ids is None:
        return matching
    named = set(ids)
    return [i for i in matching if i in named]


async def prune(
    store: Store,
    before: float,
    *,
    step: int = PRUNE_STEP,
    pause: float = 0.05,
    stop: asyncio.Event | None = None,
) -> int:
    """Forget the events received before `before`, `step` per transaction, pausing between
    two so that intake and delivery write meanwhile; how many."""
    total = 0
    while stop is None or not stop.is_set():
        gone = await store.prune_history(before, step)
        total += gone
        if gone < step:
            break
        await asyncio.sleep(pause)
    return total
