"""The thinning step of `cryptoetl maintain` (docs/rollups.md): partitions of the unified history
older than FULL_RESOLUTION_DAYS reduced to the last observation of each (source, coin, hour)."""

from __future__ import annotations

from datetime import datetime

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.db.thinning import thin
from cryptoetl.models import StepReport


async def thin_old_partitions(pool: Pool, settings: Settings, now: datetime) -> StepReport:
    """Thin what is older than FULL_RESOLUTION_DAYS; say what was kept, removed and left busy."""
    days = settings.full_resolution_days
    if days == 0:
        return StepReport("thin", "every observation kept (FULL_RESOLUTION_DAYS=0)", {})
    report = await thin(pool, days, now)
    rewritten = [p for p in report.thinned if p.rows_after < p.rows_before]
    summary = (
        f"{len(report.thinned)} partition(s) older than {days} days done, {len(rewritten)} "
        f"rewritten: {report.rows_removed:,} observation(s) removed, one per (source, coin, "
        "hour) kept"
    )
    if rewritten:
        summary += f"; longest lock {max(p.lock_ms for p in rewritten):.0f} ms"
    if report.busy:
        summary += f"; {len(report.busy)} busy, left for the next run: {', '.join(report.busy)}"
    return StepReport(
        "thin",
        summary,
        {
            "partitions": len(report.thinned),
            "rewritten": len(rewritten),
            "rows_removed": report.rows_removed,
            "rolled_up_hours": sum(p.rolled_up for p in report.thinned),
            "busy": len(report.busy),
        },
    )
