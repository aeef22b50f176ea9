"""Creating, listing, expiring and previewing silences over a store: the operations the CLI
(`relay silence`), the JSON API (`relay.http.silences`) and the Slack buttons share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relay.records import OutboxRow
from relay.silences.matching import Preview, preview
from relay.silences.model import Silence, SilenceError, SilenceRequest, build
from relay.store.interface import Store

PREVIEW_ROWS = 500  # the newest outbox rows a preview looks through


class SilenceNotFound(LookupError):
    def __init__(self, silence_id: str) -> None:
        super().__init__(f"no silence '{silence_id}'")
        self.silence_id = silence_id


async def create(
    store: Store,
    request: SilenceRequest,
    now: float,
    destinations: Sequence[str] | None = None,
) -> Silence:
    """Validate and store a silence; it holds from the next routing batch of every replica.
    Raises `SilenceError` (naming the field) for a request that cannot be honoured."""
    silence = build(request, now, destinations=destinations)
    await store.add_silence(silence)
    return silence


async def expire(store: Store, silence_id: str, now: float) -> Silence:
    """End a silence now (one that ended already stays as it was)."""
    found = await store.expire_silence(silence_id, now)
    if found is None:
        raise SilenceNotFound(silence_id)
    return found


async def listing(store: Store, now: float, *, expired: bool = False) -> list[Silence]:
    """Active and future silences (with `expired`, the ones kept for history too)."""
    return await store.silences(None if expired else now)


@dataclass(frozen=True, slots=True)
class Previewed:
    row: OutboxRow
    preview: Preview


async def previewed(
    store: Store, request: SilenceRequest, now: float, destinations: Sequence[str] | None
) -> list[Previewed]:
    """The recent outbox messages a silence made of `request` would have matched."""
    if request.ends_at is None and request.duration is None:  # a preview needs no end
        request = request.model_copy(update={"duration": 3600.0})
    silence = build(request, now, destinations=destinations)
    found: list[Previewed] = []
    for row in await store.recent_rows(PREVIEW_ROWS):
        keys = row.step.keys() if row.step is not None else ()
        seen = preview(silence, row.event_source, row.event_type, row.destination, keys)
        if seen.matched:
            found.append(Previewed(row, seen))
    return found


__all__ = ["Previewed", "SilenceError", "SilenceNotFound", "create", "expire", "listing"]
