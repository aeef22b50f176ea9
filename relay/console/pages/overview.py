"""The overview (`/console`): the backlog per destination, as `relay outbox` prints it, as a
table and a server-side SVG chart, and the events accepted but not yet routed."""

from __future__ import annotations

from relay.console.charts import stacked_bars
from relay.console.page import Answer, Ask, Page, Shown
from relay.ops.backlog import backlog

KINDS = ("pending", "inflight", "dead", "muted", "digest")


async def show(ask: Ask) -> Answer:
    services = ask.services
    found = await backlog(services.store, services.runtime.config.destinations)
    chart = stacked_bars(
        [
            (s.destination, (s.pending, s.inflight, s.dead, s.muted, s.digesting))
            for s in found.destinations
        ],
        KINDS,
    )
    return Shown(
        "overview.html.j2",
        {
            "backlog": found.destinations,
            "inbox": found.inbox,
            "chart": chart,
            "now": services.clock(),
            "dead_total": sum(s.dead for s in found.destinations),
        },
    )


PAGE = Page(path="", title="Overview", show=show)
