"""The rollup compaction step of `cryptoetl maintain` (docs/rollups.md): each closed partition
of `unified_hourly` replaced by a sorted copy filled to 100 %, once, and again after a write."""

from __future__ import annotations

from datetime import datetime

from cryptoetl.config import Settings
from cryptoetl.db.compaction import compact
from cryptoetl.db.pool import Pool
from cryptoetl.models import StepReport


async def compact_rollups(pool: Pool, settings: Settings, now: datetime) -> StepReport:
    """Compact the closed rollup partitions; say how many, the bytes before and after."""
    report = await compact(pool, now)
    done = report.compacted
    summary = (
        f"{len(done)} rollup partition(s) ending by {report.cutoff:%Y-%m-%d} compacted: "
        f"{report.rows:,} rows, {report.bytes_before:,} -> {report.bytes_after:,} bytes"
    )
    if report.rows:
        summary += (
            f" ({report.bytes_before / report.rows:.0f} -> "
            f"{report.bytes_after / report.rows:.0f} bytes per row)"
        )
    if done:
        summary += f"; longest lock {max(p.lock_ms for p in done):.0f} ms"
    if report.busy:
        summary += f"; {len(report.busy)} busy, left for the next run: {', '.join(report.busy)}"
    return StepReport(
        "compact_rollups",
        summary,
        {
            "partitions": len(done),
            "rows": report.rows,
            "bytes_before": report.bytes_before,
            "bytes_after": report.bytes_after,
            "busy": len(report.busy),
        },
    )
