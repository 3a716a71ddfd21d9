"""`export_history`: every (source, UTC day) slice of the history in range, one Parquet file
each, from one database snapshot.

A day whose file already holds the same slice (row count and newest `ingested_at`, recorded in
the file) is skipped, so an interrupted export resumes where it stopped and a repeated one
rewrites only the days that changed (today's, usually). `force` rewrites every day.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from cryptoetl.db.history_export import DaySlice, plan_days, slice_rows, snapshot
from cryptoetl.db.pool import Connection
from cryptoetl.etl.export.files import SCHEMAS, DayWriter, Format, is_current, to_batch

BATCH_ROWS = 20_000


@dataclass(slots=True)
class ExportReport:
    """What an export did: days written and skipped, rows written, per (source, day)."""

    written: list[DaySlice] = field(default_factory=list)
    skipped: list[DaySlice] = field(default_factory=list)

    @property
    def rows_written(self) -> int:
        return sum(part.rows for part in self.written)

    @property
    def rows_total(self) -> int:
        return self.rows_written + sum(part.rows for part in self.skipped)


async def export_history(
    conn: Connection,
    out: Path,
    *,
    since: date | None = None,
    until: date | None = None,
    sources: Sequence[str] | None = None,
    force: bool = False,
    fmt: Format = "parquet",
    table: str = "observations",
    batch_rows: int = BATCH_ROWS,
    on_day: Callable[[DaySlice, bool], None] | None = None,
) -> ExportReport:
    """Write the history (days `since`..`until` inclusive, the given sources) under `out`, as
    Parquet (or `fmt="csv"`)."""
    report = ExportReport()
    # before reading anything: a directory that cannot be made fails first
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    async with snapshot(conn):
        plan = await plan_days(conn, since=since, until=until, sources=sources, table=table)
        for part in plan:
            write = force or not is_current(out, part, fmt)
            if write:
                writer = DayWriter(out, part, fmt, SCHEMAS[table])
                await _write_day(conn, writer, part, batch_rows, table)
            (report.written if write else report.skipped).append(part)
            if on_day is not None:
                on_day(part, write)
    return report


async def _write_day(
    conn: Connection, writer: DayWriter, part: DaySlice, batch_rows: int, table: str
) -> None:
    try:
        async for records in slice_rows(conn, part, batch_rows, table):
            writer.write(to_batch(records, SCHEMAS[table]))
        writer.commit()
    finally:
        writer.discard()
