"""The events list (`/console/events`): every event history holds, newest first, filtered on
source, type (a glob), outcome, destination, time range and id or text, in pages of 50 with a
keyset cursor. The filters are the URL's query, so a filtered list can be shared or bookmarked.

New events appear without a reload: `static/live.js` asks `/console/events/new` (with the same
filters and the newest id shown) every few seconds for the rows that came since, and puts them
on top. Without script the page links to that same address, which then says how many new
events there are and links back to the list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from relay.console.page import Answer, Ask, Goto, Page, Shown
from relay.ops import history
from relay.store.history import OUTCOMES
from relay.store.views import EventFilter, EventSummary, encode_cursor

FILTERS = ("source", "type", "outcome", "destination", "since", "until", "q")
PER_PAGE = 50
NEWER = 100  # the most new rows the live list takes at once; past it: "100+ new — show"


@dataclass(frozen=True, slots=True)
class Listing:
    """What the list page shows: the filter as typed (for the form and every link), the
    events, and where the next page starts."""

    typed: Mapping[str, str]
    events: tuple[EventSummary, ...]
    older: str | None  # the query of the next (older) page
    error: str

    def query(self, **more: str) -> str:
        """The filters as a query string, with `more` parameters (empty ones left out)."""
        return urlencode({k: v for k, v in {**self.typed, **more}.items() if v})


def typed(ask: Ask) -> dict[str, str]:
    return {k: ask.arg(k) for k in FILTERS}


def parse(values: Mapping[str, str]) -> EventFilter:
    """The filter, or `history.BadQuery` naming the field at fault."""
    return history.parse_filter({k: v for k, v in values.items() if v})


async def show(ask: Ask) -> Answer:
    values = typed(ask)
    if any(not v for k, vs in ask.query.items() if k in (*FILTERS, "cursor") for v in vs):
        # the filter form sends every field: the address to share names only those set
        clean = Listing(values, (), None, "").query(cursor=ask.arg("cursor"))
        return Goto(f"/console/events?{clean}" if clean else "/console/events")
    try:
        flt = parse(values)
        before, _ = history.parse_page({"cursor": ask.arg("cursor")})
    except history.BadQuery as exc:
        listing = Listing(values, (), None, str(exc))
        return Shown("events.html.j2", _context(ask, listing, first=True), status=400)
    found = await history.events(ask.services.store, flt, before, PER_PAGE)
    cursor = encode_cursor(found.after)
    listing = Listing(values, found.items, None, "")
    if cursor is not None:
        listing = Listing(values, found.items, listing.query(cursor=cursor), "")
    return Shown("events.html.j2", _context(ask, listing, first=before is None))


def _context(ask: Ask, listing: Listing, *, first: bool) -> dict[str, object]:
    config = ask.services.runtime.config
    newest = listing.events[0].id if listing.events else 0
    return {
        "listing": listing,
        "first": first,  # the newest page: the one new events join
        "newest": newest,
        "live": f"/console/events/new?{listing.query(after=str(newest))}",
        "sources": sorted(config.sources),
        "destinations": sorted(config.destinations),
        "outcomes": OUTCOMES,
        "now": ask.services.clock(),
    }


async def newer(ask: Ask) -> Answer:
    """The events that came after `after` and match the filters: rows for `live.js`
    (`part=rows`), or a page saying how many there are."""
    values = typed(ask)
    after = ask.arg("after")
    known = int(after) if after.isdigit() else 0  # the newest id the list shows
    try:
        flt = parse(values)
    except history.BadQuery as exc:
        empty = Listing(values, (), None, "")
        context = {"error": str(exc), "count": 0, "more": False, "listing": empty}
        return Shown("events_new.html.j2", context, status=400)
    found = await history.events(ask.services.store, flt, None, NEWER + 1)
    fresh = tuple(e for e in found.items if e.id > known)
    context = {
        "listing": Listing(values, fresh[:NEWER], None, ""),
        "count": min(len(fresh), NEWER),
        "more": len(fresh) > NEWER,
        "error": "",
        "newest": fresh[0].id if fresh else known,
        "now": ask.services.clock(),
    }
    if ask.arg("part") == "rows":
        return Shown("events_rows.html.j2", context)
    return Shown("events_new.html.j2", context)


PAGE = Page(path="/events", title="Events", show=show)
NEW = Page(path="/events/new", title="New events", show=newer, menu=False, section="/events")
