"""Time-series charts as inline SVG, drawn on the server (no script, no CDN).

A chart is a few lines over a shared time axis, with optional shaded spans (alerts, maintenance),
a min–max band per line, marked points (flagged windows) and horizontal reference lines (flag
thresholds). Every point carries a ``<title>``, so hovering shows its time and value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

import pandas as pd

PALETTE = ["#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2"]
WIDTH, HEIGHT = 880, 210
LEFT, RIGHT, TOP, BOTTOM = 58, 26, 26, 30


@dataclass
class Line:
    """One series: values at times, optionally a band (low, high) and marked points."""

    label: str
    times: pd.Series
    values: pd.Series
    low: pd.Series | None = None
    high: pd.Series | None = None
    marked: pd.Series | None = None  # bool per point: drawn as a red dot


@dataclass
class Span:
    """A shaded period: ``kind`` is a CSS class (``alert``, ``maintenance``)."""

    start: pd.Timestamp
    end: pd.Timestamp
    kind: str
    label: str


@dataclass
class Chart:
    """A chart description; :func:`render_svg` draws it."""

    title: str
    start: pd.Timestamp
    end: pd.Timestamp
    lines: list[Line] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    references: list[tuple[float, str]] = field(default_factory=list)
    y_range: tuple[float, float] | None = None
    unit: str = ""
    gap: pd.Timedelta = pd.Timedelta(minutes=30)  # longer gaps break a line


def _nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _time_ticks(start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    hours = (end - start).total_seconds() / 3600
    step = next((h for h in (1, 2, 3, 6, 12, 24, 48) if hours / h <= 8), 168)
    first = start.ceil(f"{step}h") if step < 24 else start.ceil("1D")
    return list(pd.date_range(first, end, freq=f"{step}h"))


def _y_range(chart: Chart) -> tuple[float, float]:
    if chart.y_range:
        return chart.y_range
    values = []
    for line in chart.lines:
        for series in (line.values, line.low, line.high):
            if series is not None:
                values.extend(float(v) for v in series.dropna())
    values.extend(v for v, _ in chart.references)
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or max(abs(high) * 0.05, 0.5)
    return low - pad, high + pad


def render_svg(chart: Chart) -> str:
    """The chart as an ``<svg>`` element (responsive: it scales to its container's width)."""
    x0, x1 = LEFT, WIDTH - RIGHT
    y0, y1 = HEIGHT - BOTTOM, TOP
    start, end = chart.start, chart.end
    span_s = max((end - start).total_seconds(), 1.0)
    low, high = _y_range(chart)
    height = (high - low) or 1.0

    def x(t: pd.Timestamp) -> float:
        return x0 + (x1 - x0) * min(max((t - start).total_seconds() / span_s, 0.0), 1.0)

    def y(v: float) -> float:
        return y0 - (y0 - y1) * (min(max(v, low), high) - low) / height

    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(chart.title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text class="chart-title" x="{x0}" y="16">{escape(chart.title)}'
        f"{escape(f' ({chart.unit})' if chart.unit else '')}</text>",
    ]
    for s in chart.spans:
        if s.end <= start or s.start >= end:
            continue
        left, right = x(max(s.start, start)), x(min(s.end, end))
        out.append(
            f'<rect class="span span-{escape(s.kind)}" x="{left:.1f}" y="{y1}" '
            f'width="{max(right - left, 2):.1f}" height="{y0 - y1}"><title>{escape(s.label)}</title></rect>'
        )
    for tick in _nice_ticks(low, high):
        ty = y(tick)
        out.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{ty:.1f}" y2="{ty:.1f}"/>')
        out.append(
            f'<text class="tick" x="{x0 - 6}" y="{ty + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>'
        )
    for tick in _time_ticks(start, end):
        tx = x(tick)
        label = f"{tick:%H:%M}" if tick.hour or tick.minute else f"{tick:%b %d}"
        out.append(f'<line class="grid" x1="{tx:.1f}" x2="{tx:.1f}" y1="{y1}" y2="{y0}"/>')
        anchor = "end" if tx > x1 - 20 else "middle"
        out.append(
            f'<text class="tick" x="{tx:.1f}" y="{y0 + 16}" text-anchor="{anchor}">{label}</text>'
        )
    out.append(f'<line class="axis" x1="{x0}" x2="{x1}" y1="{y0}" y2="{y0}"/>')
    for value, label in chart.references:
        ry = y(value)
        out.append(
            f'<line class="reference" x1="{x0}" x2="{x1}" y1="{ry:.1f}" y2="{ry:.1f}">'
            f"<title>{escape(label)}</title></line>"
        )
    legend_x = x1
    for i, line in enumerate(chart.lines):
        color = PALETTE[i % len(PALETTE)]
        out.extend(_draw_line(line, color, x, y, chart.gap, chart.unit))
    for i, line in reversed(list(enumerate(chart.lines))):
        color = PALETTE[i % len(PALETTE)]
        width = 7 * len(line.label) + 22
        legend_x -= width
        out.append(
            f'<rect x="{legend_x:.0f}" y="7" width="12" height="4" fill="{color}"/>'
            f'<text class="legend" x="{legend_x + 16:.0f}" y="13">{escape(line.label)}</text>'
        )
    if not chart.lines:
        out.append(
            f'<text class="empty" x="{(x0 + x1) / 2}" y="{(y0 + y1) / 2}" '
            'text-anchor="middle">no data in this period</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _segments(times: pd.Series, gap: pd.Timedelta) -> list[list[int]]:
    """Index runs without gaps longer than ``gap``."""
    runs: list[list[int]] = []
    previous = None
    for i, t in enumerate(times):
        if previous is None or t - previous > gap:
            runs.append([])
        runs[-1].append(i)
        previous = t
    return runs


def _draw_line(line: Line, color: str, x, y, gap: pd.Timedelta, unit: str) -> list[str]:
    keep = line.values.notna().to_numpy()
    times = line.times[keep].reset_index(drop=True)
    values = line.values[keep].astype(float).reset_index(drop=True)
    low = line.low[keep].reset_index(drop=True) if line.low is not None else None
    high = line.high[keep].reset_index(drop=True) if line.high is not None else None
    marked = line.marked[keep].reset_index(drop=True) if line.marked is not None else None
    out = []
    for run in _segments(times, gap):
        if low is not None and high is not None:
            band = [i for i in run if pd.notna(low[i]) and pd.notna(high[i])]
            if len(band) > 1:
                upper = " ".join(f"{x(times[i]):.1f},{y(float(high[i])):.1f}" for i in band)
                lower = " ".join(
                    f"{x(times[i]):.1f},{y(float(low[i])):.1f}" for i in reversed(band)
                )
                out.append(f'<polygon class="band" fill="{color}" points="{upper} {lower}"/>')
        points = " ".join(f"{x(times[i]):.1f},{y(values[i]):.1f}" for i in run)
        out.append(f'<polyline class="line" stroke="{color}" points="{points}"/>')
    suffix = f" {unit}" if unit else ""
    for i in range(len(times)):
        flagged = marked is not None and bool(marked[i])
        tip = f"{line.label} {times[i]:%Y-%m-%d %H:%M} UTC: {_fmt(values[i])}{suffix}"
        if flagged:
            tip += " (flagged)"
        out.append(
            f'<circle class="{"point flagged" if flagged else "point"}" '
            f'cx="{x(times[i]):.1f}" cy="{y(values[i]):.1f}" r="{4 if flagged else 2.5}" '
            f'fill="{"#dc2626" if flagged else color}"><title>{escape(tip)}</title></circle>'
        )
    return out
