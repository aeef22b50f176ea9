"""Dead letters (`/console/dead`): why each message was given up, filtered by destination,
reason, event type (glob) and text; replay or drop the ones ticked or all that match the
filter, after a confirmation page that says how many. Acting reuses the store's
`replay_dead`/`drop_dead`, as `relay dead` does, on the exact ids the confirmation counted
(a dead letter that arrives in between is not swept up with them).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from relay.console.page import Answer, Ask, Goto, Page, Shown
from relay.console.views import safe_url
from relay.messages import Card
from relay.records import OutboxRow, Status

SCAN = 10_000  # dead letters read per page view (the oldest first, as `relay dead list`)
SHOW = 200  # rows listed; actions on "all that match" reach every matching one read
FILTERS = ("destination", "reason", "type", "q")
ACTIONS = {"replay": "replayed", "drop": "dropped"}


@dataclass(frozen=True, slots=True)
class Link:
    text: str
    url: str  # as the message holds it
    href: str | None  # the URL when it may be a link (http(s) only); else shown as text


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter as the page shows it: every string as the store holds it (the template
    escapes them)."""

    id: int
    destination: str
    source: str
    event_id: str
    event_type: str
    attempts: int
    reason: str
    error: str
    created_at: float
    text: str
    links: tuple[Link, ...]


@dataclass(frozen=True, slots=True)
class Filter:
    destination: str = ""
    reason: str = ""
    type: str = ""  # a glob: task.*
    q: str = ""  # text in the event id, type, error or message

    def matches(self, d: DeadLetter) -> bool:
        if self.destination and d.destination != self.destination:
            return False
        if self.reason and d.reason != self.reason:
            return False
        if self.type and not fnmatch.fnmatchcase(d.event_type, self.type):
            return False
        if self.q:
            needle = self.q.casefold()
            haystack = (d.event_id, d.event_type, d.error, d.text, d.source)
            if not any(needle in h.casefold() for h in haystack):
                return False
        return True

    def query(self) -> str:
        """The filter as a query string (empty fields left out)."""
        return urlencode({k: v for k in FILTERS if (v := getattr(self, k))})


def _letter(row: OutboxRow) -> DeadLetter:
    message = row.message
    if isinstance(message, Card):
        text = message.title
        links = tuple(Link(b.text, b.url, safe_url(b.url)) for b in message.buttons)
    else:
        text, links = message.text, ()
    return DeadLetter(
        id=row.id,
        destination=row.destination,
        source=row.event_source,
        event_id=row.event_id,
        event_type=row.event_type,
        attempts=row.attempts,
        reason=row.last_reason or "",
        error=row.last_error or "",
        created_at=row.created_at,
        text=text,
        links=links,
    )


async def _dead(ask: Ask) -> tuple[list[DeadLetter], bool]:
    rows = await ask.services.store.rows(Status.DEAD, SCAN)
    return [_letter(r) for r in rows], len(rows) >= SCAN


def _filter(values: dict[str, str]) -> Filter:
    return Filter(**{k: values.get(k, "")[:500] for k in FILTERS})


def _ids(values: Sequence[str]) -> list[int]:
    """Dead letter ids from form fields (one each, or comma-separated), at most `SCAN`: no
    page offers more, and the store's `IN (...)` stays within every backend's limits."""
    found = []
    for value in values:
        for part in value.split(","):
            if part.strip().isdigit():
                found.append(int(part))
    return found[:SCAN]


async def _page(ask: Ask, flt: Filter, notice: str = "") -> Shown:
    letters, truncated = await _dead(ask)
    matching = [d for d in letters if flt.matches(d)]
    return Shown(
        "dead.html.j2",
        {
            "filter": flt,
            "letters": matching[:SHOW],
            "matching": len(matching),
            "total": len(letters),
            "truncated": truncated,
            "scan": SCAN,
            "destinations": sorted(
                {d.destination for d in letters} | set(ask.services.runtime.config.destinations)
            ),
            "reasons": sorted({d.reason for d in letters if d.reason}),
            "notice": notice,
            "now": ask.services.clock(),
        },
    )


async def show(ask: Ask) -> Answer:
    flt = _filter({k: ask.arg(k) for k in FILTERS})
    done, count = ask.arg("done"), ask.arg("count")
    notice = ""
    if done in ACTIONS.values() and count.isdigit():
        notice = f"{done.capitalize()} {int(count)} dead letter(s)."
        if done == "replayed":
            notice += " A running relay delivers them within a second."
    return await _page(ask, flt, notice)


async def act(ask: Ask) -> Answer:
    """First POST: count what the action would touch and ask to confirm. Second (`confirm`):
    act on the ids that were counted, then back to the list with the same filter."""
    flt = _filter({k: ask.field(k) for k in FILTERS})
    action = ask.field("action")
    if action not in ACTIONS:
        return await _page(ask, flt, "Choose replay or drop.")
    if ask.field("confirm") == "yes":
        ids = _ids(ask.fields("ids"))
        store = ask.services.store
        if action == "replay":
            count = await store.replay_dead(ids, time.time())
        else:
            count = await store.drop_dead(ids)
        query = "&".join(x for x in (flt.query(), f"done={ACTIONS[action]}&count={count}") if x)
        return Goto(f"/console/dead?{query}")
    letters, _ = await _dead(ask)
    if ask.field("scope") == "matching":
        chosen = [d for d in letters if flt.matches(d)]
    else:
        ticked = set(_ids(ask.fields("id")))
        chosen = [d for d in letters if d.id in ticked]
    if not chosen:
        return await _page(ask, flt, "No dead letter is selected: tick some, or act on all.")
    return Shown(
        "dead_confirm.html.j2",
        {
            "action": action,
            "filter": flt,
            "count": len(chosen),
            "ids": ",".join(str(d.id) for d in chosen),
            "sample": chosen[:20],
            "scope": ask.field("scope"),
        },
    )


PAGE = Page(path="/dead", title="Dead letters", show=show, act=act)
