"""How the pages write numbers, prices, times and durations. Pure."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def count(value: int | None) -> str:
    """`12,345`; an em dash for nothing."""
    return "—" if value is None else f"{value:,}"


def usd(value: float | None) -> str:
    """A price: cents from $1 up (`$63,241.12`), four significant digits below (`$0.0001234`)."""
    if value is None or not math.isfinite(value):
        return "—"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if value == 0:
        return "$0"
    decimals = 3 - math.floor(math.log10(abs(value)))
    return f"${value:.{decimals}f}"


def compact_usd(value: float | None) -> str:
    """A market cap or volume: `$1.23 T`, `$456.7 B`, `$12.3 M`, `$9,876`."""
    if value is None or not math.isfinite(value):
        return "—"
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(value) >= size:
            return f"${value / size:,.{2 if abs(value) < 10 * size else 1}f} {suffix}"
    return f"${value:,.0f}"


def percent(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.2f} %" if abs(value) < 10 else f"{value:.1f} %"


def signed_percent(value: float | None) -> str:
    """A difference in percent with its sign: `+0.21 %`, a minus sign and `0.10 %`, `0.00 %`."""
    if value is None or not math.isfinite(value):
        return "—"
    text = percent(abs(value))
    if round(value, 2) == 0:
        return text
    return f"+{text}" if value > 0 else f"\u2212{text}"


def utc(when: datetime | None, *, seconds: bool = False) -> str:
    """`2025-02-09 17:00 UTC` (with `:05` seconds when asked)."""
    if when is None:
        return "never"
    pattern = "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"
    return when.astimezone(UTC).strftime(pattern)


def span(seconds: float | None) -> str:
    """A length of time: `0.42 s`, `12.3 s`, `5 min 02 s`, `3 h 05 min`, `4 d 2 h`."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def ago(when: datetime | None, now: datetime) -> str:
    """`45 s ago`, `3 min ago`, `2 h ago`, `5 d ago`; `in 3 s` for a clock ahead of ours."""
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    if seconds < 0:
        return f"in {_rough(-seconds)}"
    return f"{_rough(seconds)} ago"


def _rough(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} d"


def every(seconds: int) -> str:
    """A schedule interval: `30 s`, `5 min`, `2 h`, `90 min`."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def basename(path: str) -> str:
    """The last part of a file path (`/data/prices.csv` -> `prices.csv`)."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or path
