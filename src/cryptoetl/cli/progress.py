"""What `cryptoetl etl run` shows: live progress on stderr, and the summary table.

On a terminal the progress is a `rich` live display, one line per source (`coingecko  750 rows
312/s`, `coinpaprika  success  81 rows`), redrawn below the log lines: while it is shown, the
log handler writes through the display's console (`redirect_log_stream`), so a log line is
printed above the progress instead of through it. Off a terminal: one plain line per committed
batch, so a log file or a CI console reads well. The summary is a plain-text table, one row per
source.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from cryptoetl.log import redirect_log_stream
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


class _AboveDisplay:
    """A stream for the log handler while the live display is shown: each whole line is
    printed through the display's console (above the display), never wrapped."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self.console.print(Text.from_ansi(line), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass


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
        self._display: Live | None = None
        self._logs_to: Any = None

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
        """Leave the live display as drawn last (what follows starts below it) and give the
        log lines their stream back."""
        display, self._display = self._display, None
        if display is None:
            return
        display.update(self._render(), refresh=True)
        display.stop()
        if self._logs_to is not None:
            redirect_log_stream(self._logs_to)
            self._logs_to = None

    @staticmethod
    def _rate(line: _Line) -> int:
        elapsed = max(time.monotonic() - line.started, 1e-6)
        return round(line.rows / elapsed)

    def _render(self) -> Group:
        width = max((len(source) for source in self.lines), default=0)
        rows = []
        for source, line in self.lines.items():
            text = Text(source.ljust(width), style="bold")
            if line.done is not None:
                style = {"success": "green", "partial": "yellow"}.get(line.done, "red")
                text.append(f"  {line.done}", style=style)
                text.append(f"  {line.rows:,} rows")
            else:
                text.append(f"  {line.rows:,} rows  {self._rate(line):,}/s")
            rows.append(text)
        return Group(*rows)

    def _redraw(self) -> None:
        if self._display is None:
            console = Console(file=self.stream, force_terminal=True, highlight=False)
            self._display = Live(
                self._render(), console=console, auto_refresh=False, transient=False
            )
            self._display.start()
            # log lines go through the display's console: printed above it, never through it
            self._logs_to = redirect_log_stream(_AboveDisplay(console))
        self._display.update(self._render(), refresh=True)

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
