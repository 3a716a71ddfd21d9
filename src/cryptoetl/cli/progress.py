"""What `cryptoetl etl run` shows: live progress on stderr, and the summary table.

On a terminal the progress is one line redrawn in place (`coingecko 750 rows 312/s |
coinpaprika done`); otherwise one plain line per committed batch, so a log file or a CI
console reads well. The summary is a plain-text table, one row per source.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from cryptoetl.models import RunCounts, SourceOutcome

if TYPE_CHECKING:
    from cryptoetl.etl.backfill import BackfillOutcome, StartedBackfill

SUMMARY_COLUMNS = (
    "source",
    "status",
    "fetched",
    "inserted",
    "updated",
    "unchanged",
    "rejected",
    "duration",
    "error",
)


@dataclass
class _Line:
    started: float
    rows: int = 0
    done: str | None = None


class TerminalProgress:
    """A `ProgressSink` writing to `stream` (see the module docstring)."""

    def __init__(self, stream: TextIO, *, live: bool | None = None) -> None:
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self.lines: dict[str, _Line] = {}
        self._drawn = False

    def source_started(self, source: str, run_id: int) -> None:
        self.lines[source] = _Line(time.monotonic())
        if not self.live:
            self._write(f"{source}: run {run_id} started\n")
        else:
            self._redraw()

    def batch_loaded(self, source: str, counts: RunCounts, batches: int, label: str) -> None:
        line = self.lines.setdefault(source, _Line(time.monotonic()))
        line.rows = counts.fetched
        if self.live:
            self._redraw()
            return
        self._write(
            f"{source}: {label}: {counts.fetched} rows ({self._rate(line)} rows/s), "
            f"{counts.inserted} new, {counts.updated} updated, {counts.unchanged} unchanged, "
            f"{counts.rejected} rejected\n"
        )

    def source_finished(self, outcome: SourceOutcome) -> None:
        line = self.lines.setdefault(outcome.source, _Line(time.monotonic()))
        line.rows = outcome.counts.fetched
        line.done = outcome.status.value
        if self.live:
            self._redraw()
        else:
            self._write(f"{outcome.source}: {outcome.status.value}, {line.rows} rows\n")

    def close(self) -> None:
        """End the live line so that what follows starts on a fresh line."""
        if self.live and self._drawn:
            self._write("\n")
            self._drawn = False

    @staticmethod
    def _rate(line: _Line) -> int:
        elapsed = max(time.monotonic() - line.started, 1e-6)
        return round(line.rows / elapsed)

    def _redraw(self) -> None:
        parts = []
        for source, line in self.lines.items():
            if line.done is not None:
                parts.append(f"{source} {line.done} {line.rows} rows")
            else:
                parts.append(f"{source} {line.rows} rows {self._rate(line)}/s")
        self._write("\r\x1b[K" + " | ".join(parts))
        self._drawn = True

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _seconds(outcome: SourceOutcome) -> str:
    return f"{(outcome.finished_at - outcome.started_at).total_seconds():.1f}s"


def format_summary(outcomes: Sequence[SourceOutcome]) -> str:
    """The summary table: one row per source, numbers right-aligned, the error last."""
    rows = [list(SUMMARY_COLUMNS)]
    for outcome in outcomes:
        counts = outcome.counts
        rows.append(
            [
                outcome.source,
                outcome.status.value,
                str(counts.fetched),
                str(counts.inserted),
                str(counts.updated),
                str(counts.unchanged),
                str(counts.rejected),
                _seconds(outcome),
                outcome.error or "",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(SUMMARY_COLUMNS) - 1)]
    lines = []
    for n, row in enumerate(rows):
        cells = []
        for i, width in enumerate(widths):
            left = i < 2 or n == 0
            cells.append(row[i].ljust(width) if left else row[i].rjust(width))
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


class BackfillLines:
    """A backfill's progress on `stream`: one line per committed chunk and per failed coin."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.total = 0
        self.done = 0

    def started(self, started: StartedBackfill) -> None:
        target = started.range
        self.total = len(target.coins) * len(started.chunks)
        self.stream.write(
            f"{target.source}: backfill run {started.run_id}: {len(target.coins)} coins, "
            f"{target.since:%Y-%m-%d %H:%M} to {target.until:%Y-%m-%d %H:%M} UTC, "
            f"{len(started.chunks)} requests per coin\n"
        )
        self.stream.flush()

    def chunk_loaded(self, coin: str, label: str, counts: RunCounts) -> None:
        self.done += 1
        self.stream.write(
            f"[{self.done}/{self.total}] {label}: {counts.fetched} points, "
            f"{counts.inserted} new, {counts.unchanged} unchanged, {counts.rejected} rejected\n"
        )
        self.stream.flush()

    def coin_failed(self, coin: str, error: str) -> None:
        self.stream.write(f"FAILED {error}\n")
        self.stream.flush()


def format_backfill(outcome: BackfillOutcome) -> str:
    """The outcome: the run, its counts, then each failed coin with the provider's answer."""
    counts = outcome.counts
    lines = [
        f"backfill run {outcome.run_id} ({outcome.source}): {outcome.status.value}",
        f"coins loaded: {len(outcome.coins_loaded)}  failed: {len(outcome.coin_errors)}  "
        f"requests: {outcome.chunks}",
        f"fetched: {counts.fetched}  inserted: {counts.inserted}  updated: {counts.updated}  "
        f"unchanged: {counts.unchanged}  rejected: {counts.rejected}",
    ]
    lines.extend(f"failed: {error}" for error in outcome.coin_errors.values())
    if outcome.error and not outcome.coin_errors:
        lines.append(f"error: {outcome.error}")
    return "\n".join(lines)
