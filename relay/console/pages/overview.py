"""The overview (`/console`): the last 24 h and 7 d (`relay.ops.history.overview`, what
`/api/overview` answers): events per source and outcome, events per hour as a server-side SVG
chart, delivery latency p50/p95, the busiest and the most failing event types and destinations;
beside them the backlog per destination, as `relay outbox` prints it, as a table and a chart,
and the events accepted but not yet routed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from relay.console.charts import ColumnChart, per_hour, stacked_bars
from relay.console.page import Answer, Ask, Page, Shown
from relay.ops.history import overview
from relay.store.history import OUTCOMES
from relay.store.views import Window

KINDS = ("pending", "inflight", "dead", "muted", "digest", "silenced")


@dataclass(frozen=True, slots=True)
class Period:
    """One window as the page shows it."""

    name: str  # "24 h", "7 d"
    slug: str  # "24h", "7d": for ids and links
    window: Window
    sources: tuple[tuple[str, tuple[int, ...], int], ...]  # source, count per outcome, total
    total: int
    chart: ColumnChart


def _hour(every_day: bool) -> Callable[[float], str]:
    def label(hour: float) -> str:
        at = datetime.fromtimestamp(hour, UTC)
        return at.strftime("%a %d" if every_day else "%H:00")

    return label


def _period(name: str, slug: str, window: Window, now: float, days: int) -> Period:
    counts: dict[str, dict[str, int]] = {}
    for t in window.by_source:
        counts.setdefault(t.key, {})[t.sub or ""] = t.count
    sources = tuple(
        (source, tuple(per.get(o, 0) for o in OUTCOMES), sum(per.values()))
        for source, per in sorted(counts.items())
    )
    week = days > 1
    chart = per_hour(
        window.per_hour, window.since, now,
        label=_hour(week), every=24 if week else 3
    )  # fmt: skip
    return Period(name, slug, window, sources, sum(s[2] for s in sources), chart)


async def show(ask: Ask) -> Answer:
    services = ask.services
    now = services.clock()
    found = await overview(services.store, services.runtime, now)
    chart = stacked_bars(
        [
            (s.destination, (s.pending, s.inflight, s.dead, s.muted, s.digesting, s.silenced))
            for s in found.backlog
        ],
        KINDS,
    )
    return Shown(
        "overview.html.j2",
        {
            "periods": (
                _period("24 h", "24h", found.day, now, 1),
                _period("7 days", "7d", found.week, now, 7),
            ),
            "outcomes": OUTCOMES,
            "backlog": found.backlog,
            "inbox": found.inbox,
            "chart": chart,
            "now": now,
            "dead_total": sum(s.dead for s in found.backlog),
        },
    )


PAGE = Page(path="", title="Overview", show=show)
