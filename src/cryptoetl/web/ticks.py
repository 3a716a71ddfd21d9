"""Axes for the SVG charts: price scales (linear or log), UTC time ticks, and the time axis
drawn so that its labels stay readable down to a phone's width. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

# Prices spanning more than this ratio are drawn on a log scale (a decade of Bitcoin).
LOG_RATIO = 20.0
NARROWEST = 320  # px: the narrowest drawing the time axis keeps its labels apart on
CHAR_WIDTH = 0.62  # a label character's width, as a share of the font size
LABEL_GAP = 6  # px between two labels, at least


def coordinate(value: float) -> str:
    """A coordinate, short: at most two decimals, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class Scale:
    """A value axis: its domain, its ticks with their labels, and whether it is logarithmic."""

    low: float
    high: float
    ticks: tuple[tuple[float, str], ...]
    log: bool = False

    def fraction(self, value: float) -> float:
        """Where `value` sits on the axis: 0 at `low`, 1 at `high`."""
        if self.log:
            low, high, value = math.log10(self.low), math.log10(self.high), math.log10(value)
        else:
            low, high = self.low, self.high
        return (value - low) / (high - low)


def _steps(span: float, max_ticks: int) -> list[float]:
    """Candidate steps, smallest first, from the first that could give `max_ticks` ticks."""
    raw = span / max(max_ticks - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    steps = [m * magnitude * scale for scale in (1, 10) for m in (1, 2, 2.5, 5)]
    return [step for step in steps if step >= raw * (1 - 1e-9)]


def _decimals(step: float) -> int:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if not math.isclose(round(step, decimals), step, rel_tol=1e-9):
        decimals += 1  # 2.5, 0.25...
    return decimals


def price_label(value: float, decimals: int) -> str:
    return f"${value:,.{decimals}f}"


def linear_scale(low: float, high: float, max_ticks: int = 6) -> Scale:
    """Nice round bounds around [low, high] and ticks 1, 2, 2.5 or 5 times a power of ten."""
    if not high > low:
        pad = abs(low) * 0.05 or 1.0
        low, high = low - pad, high + pad
    for step in _steps(high - low, max_ticks):
        first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
        if last - first + 1 <= max_ticks:
            break
    decimals = _decimals(step)
    ticks = tuple(
        (round(i * step, decimals + 2), price_label(i * step, decimals))
        for i in range(first, last + 1)
    )
    return Scale(first * step, last * step, ticks)


def _round_down(value: float) -> float:
    """The largest 1, 2 or 5 times a power of ten at or below `value` (> 0)."""
    exponent = math.floor(math.log10(value))
    for multiple in (5, 2, 1):
        if multiple * 10.0**exponent <= value * (1 + 1e-9):
            return multiple * 10.0**exponent
    return 10.0 ** (exponent - 1) * 5  # pragma: no cover - 1 x 10^e is always at or below


def _round_up(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (> 0)."""
    exponent = math.floor(math.log10(value))
    for multiple in (1, 2, 5, 10):
        if multiple * 10.0**exponent >= value * (1 - 1e-9):
            return multiple * 10.0**exponent
    return 10.0 ** (exponent + 1)  # pragma: no cover - 10 x 10^e is always at or above


def log_scale(low: float, high: float, max_ticks: int = 6) -> Scale:
    """Bounds at 1, 2 or 5 times a power of ten around [low, high] (both > 0); ticks at the
    powers of ten inside, and at 2x and 5x (or only 5x) too when there is room for them."""
    bottom, top = _round_down(low), _round_up(high)
    exponents = range(math.floor(math.log10(bottom)), math.ceil(math.log10(top)) + 1)

    def inside(multiples: tuple[int, ...]) -> list[float]:
        values = [m * 10.0**e for e in exponents for m in multiples]
        return [v for v in values if bottom * (1 - 1e-9) <= v <= top * (1 + 1e-9)]

    for multiples in ((1, 2, 5), (1, 5), (1,)):
        values = inside(multiples)
        if len(values) <= max_ticks:
            break
    values = values[:: math.ceil(len(values) / max_ticks)]
    ticks = tuple(
        (value, price_label(value, max(0, -math.floor(math.log10(value) + 1e-9))))
        for value in values
    )
    return Scale(bottom, top, ticks, log=True)


def price_scale(low: float, high: float, max_ticks: int = 6) -> Scale:
    """Log when the prices span more than `LOG_RATIO` (and are all positive), else linear."""
    if low > 0 and high / low > LOG_RATIO:
        return log_scale(low, high, max_ticks)
    return linear_scale(low, high, max_ticks)


@dataclass(frozen=True, slots=True)
class TimeStep:
    seconds: int = 0  # a fixed step (minutes to weeks)...
    months: int = 0  # ...or a calendar step


_STEPS = (
    *(TimeStep(seconds=s) for s in (1, 2, 5, 10, 15, 30)),
    *(TimeStep(seconds=m * 60) for m in (1, 2, 5, 10, 15, 30)),
    *(TimeStep(seconds=h * 3600) for h in (1, 2, 3, 6, 12)),
    *(TimeStep(seconds=d * 86400) for d in (1, 2, 7, 14)),
    *(TimeStep(months=m) for m in (1, 2, 3, 6)),
    *(TimeStep(months=12 * y) for y in (1, 2, 5, 10, 20, 50)),
)


def _month_ticks(start: datetime, end: datetime, months: int) -> list[datetime]:
    index = start.year * 12 + start.month - 1
    index += (-index) % months
    ticks: list[datetime] = []
    while True:
        tick = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
        if tick < start:
            index += months
            continue
        if tick > end:
            return ticks
        ticks.append(tick)
        index += months


def _fixed_ticks(start: datetime, end: datetime, seconds: int) -> list[datetime]:
    epoch = datetime(1970, 1, 5, tzinfo=UTC)  # a Monday at midnight: weeks start on Mondays
    first = math.ceil((start - epoch).total_seconds() / seconds)
    last = math.floor((end - epoch).total_seconds() / seconds)
    return [epoch + timedelta(seconds=i * seconds) for i in range(first, last + 1)]


def time_ticks(start: datetime, end: datetime, max_ticks: int) -> list[tuple[datetime, str]]:
    """Ticks on calendar boundaries (UTC) between `start` and `end`, at most `max_ticks` of
    them, each with its label (`14:00:30`, `14:00`, `9 Feb`, `Feb 2025`, `2025`; a tick at
    midnight on an axis of hours shows the day)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    for step in _STEPS:
        if step.months:
            ticks = _month_ticks(start, end, step.months)
        else:
            if (end - start).total_seconds() / step.seconds > max_ticks + 1:
                continue
            ticks = _fixed_ticks(start, end, step.seconds)
        if len(ticks) <= max_ticks:
            return [(tick, _label(tick, step)) for tick in ticks]
    return []  # pragma: no cover - fifty-year steps always fit


def _label(tick: datetime, step: TimeStep) -> str:
    if step.months >= 12:
        return str(tick.year)
    if step.months:
        return f"{tick:%b} {tick.year}"
    if step.seconds >= 86400 or (tick.hour, tick.minute, tick.second) == (0, 0, 0):
        return f"{tick.day} {tick:%b}"
    return f"{tick:%H:%M:%S}" if step.seconds < 60 else f"{tick:%H:%M}"


def time_axis(
    ticks: Sequence[tuple[float, str]],
    *,
    font: int,
    grid_top: float,
    grid_bottom: float,
    label_y: float,
) -> list[str]:
    """SVG grid lines and labels for ticks at horizontal percentages (0..100). Labels near an
    edge are anchored to stay inside; one that would run into the label before it (at
    `NARROWEST` px wide, so at any wider size too) is left out, its grid line kept."""
    out = []
    right_end = -math.inf
    for percent, text in ticks:
        x = f"{coordinate(percent)}%"
        out.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{grid_top}" y2="{grid_bottom}"/>')
        at = percent / 100 * NARROWEST
        width = len(text) * font * CHAR_WIDTH
        if at - width / 2 < 0:
            anchor, left = "start", at
        elif at + width / 2 > NARROWEST:
            anchor, left = "end", at - width
        else:
            anchor, left = "middle", at - width / 2
        if left < right_end + LABEL_GAP:
            continue
        right_end = left + width
        out.append(
            f'<text class="tick" x="{x}" y="{label_y}" text-anchor="{anchor}">{escape(text)}</text>'
        )
    return out
