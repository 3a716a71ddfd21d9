"""The recent runs as inline SVG: one row per source, a bar per run at its start time, its
height the run's duration and its colour the outcome. Pure.

Like the price chart, horizontal positions are percentages and text is in pixels, so one
drawing reads on a phone and on a wide screen. Every bar has a tooltip with the run's numbers
and links to the run's JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from cryptoetl.web import format as fmt
from cryptoetl.web.ticks import coordinate as _n
from cryptoetl.web.ticks import time_axis, time_ticks

STATUS_COLORS = {
    "success": "#2e7d32",
    "partial": "#ef8f00",
    "failed": "#c62828",
    "running": "#1565c0",
}
FONT = 12
LEGEND = 24
LABEL = 16  # the source's name above its bars
BARS = 34  # the tallest bar
ROW = LABEL + BARS + 10
AXIS = 24
BAR_WIDTH = 6
MAX_TICKS = 5


@dataclass(frozen=True, slots=True)
class RunMark:
    """One run as the timeline draws it."""

    run_id: int
    source: str
    status: str
    started_at: datetime
    seconds: float | None
    tooltip: str


def _legend() -> list[str]:
    items, x = [], 0.0
    for status, color in STATUS_COLORS.items():
        items.append(f'<rect x="{_n(x)}" y="6" width="10" height="10" fill="{color}"/>')
        items.append(f'<text class="legend" x="{_n(x + 14)}" y="15">{status}</text>')
        x += 24 + len(status) * FONT * 0.62
    return items


def _window(runs: Sequence[RunMark]) -> tuple[datetime, datetime]:
    """From the first start to the last end, padded so that no bar sits on an edge."""
    first = min(run.started_at for run in runs)
    last = max(run.started_at + timedelta(seconds=run.seconds or 0) for run in runs)
    pad = max((last - first) * 0.03, timedelta(seconds=1))
    return first - pad, last + pad


def run_timeline(runs: Sequence[RunMark], sources: Sequence[str]) -> str:
    """SVG markup: a row per name in `sources` (in that order) with a `<rect class="run">`
    per run of that source, on a shared time axis from the first run's start to the last
    run's end. Bar heights are durations, the longest run's bar `BARS` px tall."""
    if not runs:
        return '<p class="empty">No run yet.</p>'
    start, end = _window(runs)
    total = (end - start).total_seconds()
    longest = max((run.seconds or 0.0 for run in runs), default=0.0) or 1.0
    height = LEGEND + ROW * len(sources) + AXIS
    label = f"The last {len(runs)} runs by source, from {fmt.utc(start)} to {fmt.utc(end)}"
    out = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="100%" '
        f'height="{height}" font-size="{FONT}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>",
        *_legend(),
    ]
    bottom = LEGEND + ROW * len(sources)
    ticks = time_ticks(start, end, MAX_TICKS)
    out += time_axis(
        [(1 + 97 * (when - start).total_seconds() / total, text) for when, text in ticks],
        font=FONT,
        grid_top=LEGEND,
        grid_bottom=bottom,
        label_y=bottom + 16,
    )
    for row, source in enumerate(sources):
        top = LEGEND + row * ROW
        base = top + LABEL + BARS
        mine = [run for run in runs if run.source == source]
        out.append(f'<text class="source" x="0" y="{top + 12}">{escape(source)}</text>')
        out.append(f'<line class="axis" x1="0" x2="100%" y1="{base}" y2="{base}"/>')
        if not mine:
            out.append(
                f'<text class="note" x="50%" y="{base - 10}" text-anchor="middle">'
                "no run in this window</text>"
            )
        for run in sorted(mine, key=lambda r: r.started_at):
            share = (run.started_at - start).total_seconds() / total
            tall = max(3.0, (run.seconds or 0.0) / longest * BARS)
            color = STATUS_COLORS.get(run.status, "#757575")
            out.append(
                f'<a href="/api/v1/runs/{run.run_id}"><rect class="run {escape(run.status)}" '
                f'x="{_n(1 + 97 * share)}%" y="{_n(base - tall)}" width="{BAR_WIDTH}" '
                f'height="{_n(tall)}" fill="{color}" transform="translate(-{BAR_WIDTH // 2} 0)">'
                f"<title>{escape(run.tooltip)}</title></rect></a>"
            )
    out.append("</svg>")
    return "".join(out)
