"""A price chart as inline SVG, one line per source: `line_chart(series, label=...)`. Pure.

The SVG fills the width of its container at any size: horizontal positions are percentages
and text is drawn in pixels, so labels stay readable from a phone to a wide screen. The
lines live in a nested SVG whose viewBox is stretched to the plot area (strokes keep their
width); a marker marks each point of a sparse series (a snapshot source has one point per
load) and carries its value as a tooltip. Long series are thinned to the extremes of each
pixel column; a gap much longer than the series' usual spacing breaks its line.

Output is markup: every text from data is escaped here.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from cryptoetl.web import format as fmt
from cryptoetl.web.ticks import Scale, price_scale, time_axis, time_ticks
from cryptoetl.web.ticks import coordinate as _n

# Okabe-Ito colours (distinguishable with colour-blindness), fixed per known source.
SOURCE_COLORS = {"coingecko": "#009E73", "coinpaprika": "#D55E00", "csv": "#0072B2"}
PALETTE = ("#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")

HEIGHT = 360
FONT = 12
LEGEND_ROW = 22
X_LABELS = 26  # below the plot
Y_AXIS = 76  # px: the price labels' column, left of the plot
COLUMNS = 1000  # viewBox width of the plot: x in [0, COLUMNS]
THIN_TO = 600  # points kept per series, at most twice per column bucket
MARKERS_UP_TO = 40  # series with at most this many points get a marker per point
MAX_X_TICKS = 5
MAX_Y_TICKS = 6
LEGEND_WIDTH = 330  # wrap the legend as if the chart were this narrow
GAP_FACTOR = 10  # a gap this many times the median spacing breaks the line...
GAP_SHARE = 0.02  # ...when it is also this share of the whole time span


@dataclass(frozen=True, slots=True)
class Series:
    """One line: a name for the legend and (time, price) points."""

    name: str
    points: Sequence[tuple[datetime, float]]


def color_of(name: str, index: int) -> str:
    return SOURCE_COLORS.get(name, PALETTE[index % len(PALETTE)])


@dataclass(frozen=True, slots=True)
class _Frame:
    start: datetime
    end: datetime
    prices: Scale
    top: float  # plot area, in px from the top
    bottom: float

    def x(self, when: datetime) -> float:
        """Fraction of the time axis, 0..1."""
        return (when - self.start) / (self.end - self.start)

    def percent(self, when: datetime) -> float:
        """Horizontal position in the outer SVG, in percent (1% padding each side)."""
        return 1 + 98 * self.x(when)

    def pct(self, when: datetime) -> str:
        return f"{_n(self.percent(when))}%"

    def y(self, price: float) -> float:
        """Vertical position in px from the top of the outer SVG."""
        return self.bottom - self.prices.fraction(price) * (self.bottom - self.top)


def _time_range(series: Sequence[Series]) -> tuple[datetime, datetime]:
    times = [when for s in series for when, _ in s.points]
    start, end = min(times), max(times)
    if end - start < timedelta(minutes=10):
        start, end = start - timedelta(hours=12), end + timedelta(hours=12)
    return start, end


def thin(
    points: Sequence[tuple[datetime, float]], start: datetime, end: datetime, keep: int
) -> list[tuple[datetime, float]]:
    """At most about `keep` points: the lowest and highest of each of `keep / 2` time buckets,
    in time order (so spikes survive)."""
    if len(points) <= keep:
        return list(points)
    buckets = keep // 2
    width = (end - start) / buckets
    kept: list[tuple[datetime, float]] = []
    group: list[tuple[datetime, float]] = []
    current = None
    for point in points:
        bucket = min(int((point[0] - start) / width), buckets - 1)
        if bucket != current and group:
            kept.extend(_extremes(group))
            group = []
        current = bucket
        group.append(point)
    kept.extend(_extremes(group))
    return kept


def _extremes(group: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    low = min(group, key=lambda p: p[1])
    high = max(group, key=lambda p: p[1])
    return [low] if low is high else sorted((low, high))


def _path(points: Sequence[tuple[datetime, float]], frame: _Frame) -> str:
    """`M x y L x y ...` in the nested viewBox; a new `M` after a long gap."""
    if not points:
        return ""
    times = [when for when, _ in points]
    steps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    usual = statistics.median(steps) if steps else 0.0
    limit = max(usual * GAP_FACTOR, (frame.end - frame.start).total_seconds() * GAP_SHARE)
    parts = []
    height = frame.bottom - frame.top
    for i, (when, price) in enumerate(points):
        command = "M" if i == 0 or steps[i - 1] > limit else "L"
        y = frame.y(price) - frame.top
        parts.append(f"{command}{_n(frame.x(when) * COLUMNS)} {_n(min(max(y, 0), height))}")
    return " ".join(parts)


def _legend(series: Sequence[Series], note: str) -> tuple[list[str], int]:
    """Legend items laid out left to right, wrapping at `LEGEND_WIDTH`; the rows used."""
    items, x, row = [], 0.0, 0
    entries: list[tuple[str, str | None]] = [
        (s.name, color_of(s.name, i)) for i, s in enumerate(series)
    ]
    if note:
        entries.append((note, None))
    for name, color in entries:
        width = 30 + len(name) * FONT * 0.62
        if x > 0 and x + width > LEGEND_WIDTH:
            x, row = 0.0, row + 1
        y = row * LEGEND_ROW + 15
        label_x = x
        if color is not None:
            items.append(
                f'<line x1="{_n(x)}" x2="{_n(x + 20)}" y1="{y - 4}" y2="{y - 4}" '
                f'stroke="{color}" stroke-width="3"/>'
            )
            label_x += 25
        css = "legend" if color is not None else "legend note"
        items.append(f'<text class="{css}" x="{_n(label_x)}" y="{y}">{escape(name)}</text>')
        x += width + 14
    return items, row + 1


def line_chart(
    series: Sequence[Series],
    *,
    label: str,
    height: int = HEIGHT,
    empty: str = "No prices to draw yet.",
) -> str:
    """The markup of a price chart: the price labels in an SVG of their own (`svg.y-axis`,
    `Y_AXIS` px wide) left of the plot, so no line is ever drawn over them, and the plot
    (`svg.chart`) with one `<path class="series">` per series that has points (in the order
    given), UTC dates, grid lines and a legend. No points at all: `empty`, said in words."""
    drawn = [s for s in series if s.points]
    title = escape(label)
    if not drawn:
        return (
            f'<svg class="chart empty" xmlns="http://www.w3.org/2000/svg" width="100%" '
            f'height="80" role="img" aria-label="{title}"><title>{title}</title>'
            f'<text x="50%" y="45" text-anchor="middle">{escape(empty)}</text></svg>'
        )
    start, end = _time_range(drawn)
    prices = [price for s in drawn for _, price in s.points]
    scale = price_scale(min(prices), max(prices), MAX_Y_TICKS)
    legend, rows = _legend(drawn, "log price scale" if scale.log else "")
    top = rows * LEGEND_ROW + 12
    frame = _Frame(start, end, scale, top, height - X_LABELS)
    axis = [
        f'<div class="chart-frame"><svg class="y-axis" xmlns="http://www.w3.org/2000/svg" '
        f'width="{Y_AXIS}" height="{height}" aria-hidden="true" font-size="{FONT}">'
    ]
    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="100%" height="{height}" '
        f'role="img" aria-label="{title}" font-size="{FONT}"><title>{title}</title>',
        *legend,
    ]
    for value, text in scale.ticks:
        y = _n(frame.y(value))
        out.append(f'<line class="grid" x1="0" x2="100%" y1="{y}" y2="{y}"/>')
        axis.append(
            f'<text class="tick" x="{Y_AXIS - 6}" y="{_n(frame.y(value) + 4)}" '
            f'text-anchor="end">{escape(text)}</text>'
        )
    axis.append("</svg>")
    out += time_axis(
        [(frame.percent(when), text) for when, text in time_ticks(start, end, MAX_X_TICKS)],
        font=FONT,
        grid_top=top,
        grid_bottom=frame.bottom,
        label_y=height - 8,
    )
    plot_height = _n(frame.bottom - frame.top)
    out.append(
        f'<line class="axis" x1="0" x2="100%" y1="{_n(frame.bottom)}" y2="{_n(frame.bottom)}"/>'
        f'<svg x="1%" y="{top}" width="98%" height="{plot_height}" overflow="visible" '
        f'viewBox="0 0 {COLUMNS} {plot_height}" preserveAspectRatio="none">'
    )
    for i, s in enumerate(drawn):
        points = thin(sorted(s.points), start, end, THIN_TO)
        out.append(
            f'<path class="series" data-source="{escape(s.name)}" data-points="{len(s.points)}" '
            f'd="{_path(points, frame)}" '
            f'fill="none" stroke="{color_of(s.name, i)}" stroke-width="2" '
            f'stroke-linejoin="round" vector-effect="non-scaling-stroke"/>'
        )
    out.append("</svg>")
    for i, s in enumerate(drawn):
        if len(s.points) <= MARKERS_UP_TO:
            out.extend(_markers(s, color_of(s.name, i), frame))
    out.append("</svg></div>")
    return "".join(axis + out)


def _markers(s: Series, color: str, frame: _Frame) -> list[str]:
    return [
        f'<circle class="marker" cx="{frame.pct(when)}" cy="{_n(frame.y(price))}" r="4" '
        f'fill="{color}"><title>{escape(s.name)}: {escape(fmt.usd(price))} at '
        f"{escape(fmt.utc(when))}</title></circle>"
        for when, price in s.points
    ]
