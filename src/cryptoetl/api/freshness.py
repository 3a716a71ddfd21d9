"""When is an enabled source a problem? Pure rules, used by the health check.

A source degrades the service when:
- its last finished run `failed` (or was `partial`: some of it failed), or
- the last run that loaded its data (success or partial) finished more than
  `STALE_INTERVALS` ETL intervals ago, or
- it has never loaded data and this instance has been up for more than `STALE_INTERVALS`
  intervals (a fresh start, whose first run is still on its way, is not a problem yet).

A run in progress changes nothing: the verdict stands on what has finished.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptoetl.models.times import utc_text

STALE_INTERVALS = 3


class Row(Protocol):
    """A database row or a plain dict: anything indexed by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def stale_after_seconds(interval_seconds: int) -> int:
    """How old a source's data may get before it is stale: `STALE_INTERVALS` ETL intervals."""
    return interval_seconds * STALE_INTERVALS


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with one source: `failed`, `partial`, `stale` or `no_data`, and a line
    that names the source and says it."""

    kind: str
    text: str


def source_problem(
    row: Row, *, interval_seconds: int, now: datetime, started_at: datetime
) -> Problem | None:
    """The source's problem by the rules of the module docstring; None when it is fine."""
    source = row["source"]
    limit = timedelta(seconds=stale_after_seconds(interval_seconds))
    if row["done_status"] in ("failed", "partial"):
        error = f": {row['done_error']}" if row["done_error"] else ""
        return Problem(
            row["done_status"],
            f"{source}: last run {row['done_status']} at {utc_text(row['done_at'])}{error}",
        )
    loaded = row["last_loaded_at"]
    if loaded is None:
        if now - started_at > limit:
            up = _ago(now - started_at)
            return Problem("no_data", f"{source}: no data loaded yet ({up} since start)")
    elif now - loaded > limit:
        return Problem(
            "stale",
            f"{source}: data is stale: last loaded {_ago(now - loaded)} ago "
            f"(more than {STALE_INTERVALS} ETL intervals of {interval_seconds} s)",
        )
    return None


def source_problems(
    overview: Iterable[Row],
    *,
    interval_seconds: int,
    now: datetime,
    started_at: datetime,
) -> list[str]:
    """One line per problem, naming the source; empty when every source is fine."""
    problems = (
        source_problem(row, interval_seconds=interval_seconds, now=now, started_at=started_at)
        for row in overview
    )
    return [problem.text for problem in problems if problem is not None]
