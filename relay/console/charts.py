"""Charts drawn on the server as SVG: pure geometry here, the `<svg>` markup in the template
(`templates/_charts.html.j2`), colours in `static/console.css`. No script, nothing to load.
"""

from __future__ import annotations

from collections.abc import Sequence
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
