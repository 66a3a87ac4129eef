"""Geometry for the stats page's plots, drawn as inline SVG by the template: horizontal bars
and point estimates with their confidence interval. No JavaScript, no plotting library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 480
"""Width in px of the plotting area (labels sit to its left)."""
ROW = 22
LABEL = 170


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str
    y: int
    width: float
    css: str = ""


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    height: int
    width: int = LABEL + WIDTH + 60
    label_width: int = LABEL


def bar_chart(
    items: Sequence[tuple[str, float]], *, unit: str = "", css: Sequence[str] | None = None
) -> BarChart:
    """One bar per item, scaled to the largest value."""
    top = max((v for _, v in items), default=0.0) or 1.0
    bars = [
        Bar(
            label=label,
            value=value,
            text=f"{value:g}{unit}",
            y=i * ROW,
            width=round(WIDTH * value / top, 1),
            css=(css[i] if css else ""),
        )
        for i, (label, value) in enumerate(items)
    ]
    return BarChart(bars, height=max(ROW, len(bars) * ROW))


@dataclass(frozen=True)
class Interval:
    label: str
    estimate: float
    low: float
    high: float
    n: int
    y: int
    x: float
    x_low: float
    x_high: float


@dataclass(frozen=True)
class IntervalChart:
    rows: list[Interval]
    height: int
    width: int = LABEL + WIDTH + 60
    label_width: int = LABEL
    ticks: tuple[tuple[float, str], ...] = tuple(
        (LABEL + WIDTH * t, f"{t:.0%}") for t in (0, 0.25, 0.5, 0.75, 1.0)
    )


def interval_chart(items: Sequence[tuple[str, float, float, float, int]]) -> IntervalChart:
    """Proportions in [0, 1] with their interval: ``(label, estimate, low, high, n)``."""

    def x(p: float) -> float:
        return round(LABEL + WIDTH * min(max(p, 0.0), 1.0), 1)

    rows = [
        Interval(label, est, low, high, n, 20 + i * ROW * 2, x(est), x(low), x(high))
        for i, (label, est, low, high, n) in enumerate(items)
    ]
    return IntervalChart(rows, height=40 + max(1, len(rows)) * ROW * 2)
