"""Charts drawn on the server as SVG: pure geometry here, the `<svg>` markup in the template
(`templates/_charts.html.j2`), colours in `static/console.css`. No script, nothing to load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Segment:
    kind: str  # a CSS class: pending, inflight, dead, muted, digest
    value: int
    x: float
    width: float


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    total: int
    y: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class BarChart:
    """Horizontal stacked bars, one per label, on a common scale."""

    bars: tuple[Bar, ...]
    kinds: tuple[str, ...]
    width: float
    height: float
    label_width: float
    bar_height: float


def stacked_bars(
    rows: Sequence[tuple[str, Sequence[int]]],
    kinds: Sequence[str],
    *,
    width: float = 640.0,
    label_width: float = 180.0,
    bar_height: float = 18.0,
    gap: float = 8.0,
) -> BarChart:
    """One bar per (label, values-by-kind); the longest total spans the plotting width."""
    plot = width - label_width - 60.0  # room for the total after the bar
    largest = max((sum(values) for _, values in rows), default=0)
    scale = plot / largest if largest else 0.0
    bars = []
    for i, (label, values) in enumerate(rows):
        x = label_width
        segments = []
        for kind, value in zip(kinds, values, strict=True):
            if value > 0:
                w = max(1.0, value * scale)
                segments.append(Segment(kind, value, round(x, 1), round(w, 1)))
                x += w
        bars.append(Bar(label, sum(values), i * (bar_height + gap), tuple(segments)))
    height = max(1.0, len(bars) * (bar_height + gap))
    return BarChart(tuple(bars), tuple(kinds), width, height, label_width, bar_height)


@dataclass(frozen=True, slots=True)
class Column:
    start: float  # the hour's start (epoch seconds)
    value: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class ColumnChart:
    """Vertical bars over time, one per hour, zeros included; `ticks` label some of them."""

    columns: tuple[Column, ...]
    ticks: tuple[tuple[float, str], ...]  # (x, label)
    largest: int
    width: float
    height: float
    plot_height: float


def per_hour(
    counts: Sequence[tuple[float, int]],
    since: float,
    now: float,
    *,
    width: float = 720.0,
    plot_height: float = 120.0,
    label: Callable[[float], str] = lambda hour: "",
    every: int = 6,
) -> ColumnChart:
    """One column per hour from the hour of `since` to the hour of `now`; hours with no event
    are zeros. `label` names every `every`th hour under the axis."""
    first, last = int(since // 3600), int(now // 3600)
    known = {int(hour // 3600): n for hour, n in counts}
    hours = list(range(first, last + 1))
    largest = max((known.get(h, 0) for h in hours), default=0)
    step = width / max(1, len(hours))
    columns, ticks = [], []
    for i, h in enumerate(hours):
        value = known.get(h, 0)
        tall = plot_height * value / largest if largest else 0.0
        if value and tall < 1.0:
            tall = 1.0
        x = round(i * step, 2)
        columns.append(
            Column(h * 3600.0, value, x, round(plot_height - tall, 2), round(max(step - 1, 0.5), 2),
                   round(tall, 2))
        )  # fmt: skip
        if h % every == 0 and x < width - 40:  # a label at the right edge would be cut
            ticks.append((x, label(h * 3600.0)))
    return ColumnChart(tuple(columns), tuple(ticks), largest, width, plot_height + 18, plot_height)
