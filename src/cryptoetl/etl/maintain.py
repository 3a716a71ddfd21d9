"""Maintenance: `cryptoetl maintain` on demand, and once a day on the scheduler's leader.

A maintenance run is recorded like a source run: an `etl_runs` row of source `maintenance`
(single-flighted by the one-running-run-per-source index, kept alive by heartbeats, reaped if
its process dies), with what each step did in its `report`. The steps run in `STEPS` order, each
`async def step(pool, settings, now) -> StepReport`; one failing step does not stop the others
(the run ends `partial`, or `failed` when none succeeded):

1. `partitions_ahead`: partitions for the coming weeks (so loads rarely make one), and any
   operator's rows waiting in a DEFAULT partition (unified history, rollups) moved into
   partitions of their own;
2. `retire_raw`: raw partitions older than RAW_RETENTION_DAYS detached and dropped;
3. `thin_old_partitions`: partitions older than FULL_RESOLUTION_DAYS thinned to the last
   observation of each (source, coin, UTC hour) (docs/rollups.md);
4. `compact_rollups`: closed partitions of the hourly rollups replaced by a sorted copy filled
   to 100 %, once, and again after something wrote into them (docs/rollups.md);
5. `sizes`: the size of every table and the bytes per observation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from cryptoetl.config import Settings
from cryptoetl.db import partitions, retention, runs, sizes
from cryptoetl.db.pool import DATABASE_ERRORS, Connection, Pool
from cryptoetl.errors import RunInProgressError, describe
from cryptoetl.etl.compact_step import compact_rollups
from cryptoetl.etl.owner import HEARTBEAT_SECONDS
from cryptoetl.etl.reaper import reap_dead_runs
from cryptoetl.etl.thin_step import thin_old_partitions
from cryptoetl.models import RunStatus, RunTrigger, StepReport

log = structlog.get_logger(__name__)

MAINTENANCE = "maintenance"  # the `source` of a maintenance run in etl_runs
UNIFIED_AHEAD = timedelta(days=14)
RAW_AHEAD = timedelta(days=3)

# What a failing step may raise without ending the run (the next steps still run).
STEP_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, ValueError, RuntimeError)
Step = Callable[[Pool, Settings, datetime], Awaitable[StepReport]]
# Checked inside the transaction that starts the run; raises to start nothing (the lease).
Fence = Callable[[Connection], Awaitable[None]]


async def partitions_ahead(pool: Pool, settings: Settings, now: datetime) -> StepReport:
    """Partitions for the next weeks; rows waiting in a DEFAULT partition moved out."""
    async with pool.acquire() as conn:
        created = 0
        for table in partitions.WITH_DEFAULT:
            created += await partitions.ensure(conn, table, now, now + UNIFIED_AHEAD)
        for table in (partitions.RAW_HTTP_PAGES, partitions.RAW_CSV):
            created += await partitions.ensure(conn, table, now, now + RAW_AHEAD)
        moved = 0
        for table, key in ((partitions.UNIFIED, "observed_at"), (partitions.HOURLY, "hour")):
            waiting = await partitions.default_rows(conn, table)
            if waiting:
                lo = await conn.fetchval(f"SELECT min({key}) FROM {table}_default")  # noqa: S608
                hi = await conn.fetchval(f"SELECT max({key}) FROM {table}_default")  # noqa: S608
                created += await partitions.ensure(conn, table, lo, hi)
                moved += waiting - await partitions.default_rows(conn, table)
    summary = f"{created} partition(s) created"
    if moved:
        summary += f"; {moved} row(s) moved out of the default partitions"
    return StepReport(
        "partitions_ahead", summary, {"created": created, "moved_from_default": moved}
    )


async def retire_raw(pool: Pool, settings: Settings, now: datetime) -> StepReport:
    """Raw partitions older than RAW_RETENTION_DAYS detached and dropped."""
    days = settings.raw_retention_days
    done = await retention.retire_raw(pool, days, now)
    if days == 0:
        summary = "raw records kept forever (RAW_RETENTION_DAYS=0)"
    else:
        summary = (
            f"{done.partitions} raw partition(s) older than {days} days retired: "
            f"{done.rows:,} rows, {done.bytes:,} bytes"
        )
    return StepReport(
        "retire_raw",
        summary,
        {
            "partitions": done.partitions,
            "rows": done.rows,
            "bytes": done.bytes,
            "finished_earlier": done.finished_earlier,
        },
    )


async def measure_sizes(pool: Pool, settings: Settings, now: datetime) -> StepReport:
    """Every table's bytes, and bytes per observation (unified with indexes, raw, rollups)."""
    async with pool.acquire() as conn:
        tables = {t.name: t.bytes for t in await sizes.table_sizes(conn)}
        observations = int(
            await conn.fetchval("SELECT coalesce(sum(row_count), 0) FROM source_stats")
        )
        total = await sizes.database_bytes(conn)
    raw = sum(
        tables.get(table, 0)
        for table in (partitions.RAW_HTTP, partitions.RAW_HTTP_PAGES, partitions.RAW_CSV)
    )
    unified = tables.get(partitions.UNIFIED, 0)
    rollups = tables.get("unified_hourly", 0)
    counts = {f"bytes.{name}": size for name, size in tables.items()}
    counts.update(database_bytes=total, observations=observations)
    per = ""
    if observations:
        counts.update(
            unified_bytes_per_observation=round(unified / observations),
            raw_bytes_per_observation=round(raw / observations),
            rollup_bytes_per_observation=round(rollups / observations),
        )
        per = (
            f"; per observation: unified {unified / observations:.0f} B, raw "
            f"{raw / observations:.0f} B, rollups {rollups / observations:.0f} B"
        )
    summary = f"database {total:,} bytes, {observations:,} observations{per}"
    return StepReport("sizes", summary, counts)


STEPS: tuple[Step, ...] = (
    partitions_ahead,
    retire_raw,
    thin_old_partitions,
    compact_rollups,
    measure_sizes,
)


@dataclass(frozen=True, slots=True)
class MaintenanceOutcome:
    run_id: int
    status: RunStatus
    steps: list[StepReport]
    errors: list[str]


async def _start(pool: Pool, trigger: RunTrigger, owner: str, fence: Fence | None) -> int:
    async with pool.acquire() as conn, conn.transaction():
        if fence is not None:
            await fence(conn)
        started = await runs.start_runs(conn, [MAINTENANCE], trigger, owner)
        if not started:
            busy = await runs.running(conn, [MAINTENANCE])
            raise RunInProgressError([row["id"] for row in busy], [MAINTENANCE])
    return started[0].run_id


async def _beat(pool: Pool, run_id: int) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        with contextlib.suppress(*DATABASE_ERRORS):
            async with pool.acquire() as conn:
                await runs.heartbeat(conn, [run_id])


async def run_maintenance(
    pool: Pool,
    settings: Settings,
    trigger: RunTrigger,
    owner: str,
    *,
    steps: Sequence[Step] = STEPS,
    now: datetime | None = None,
    fence: Fence | None = None,
) -> MaintenanceOutcome:
    """One maintenance run, recorded in `etl_runs`; `RunInProgressError` when one runs."""
    await reap_dead_runs(pool, spare_owner=owner)  # a killed earlier run must not block this one
    run_id = await _start(pool, trigger, owner, fence)
    moment = now or datetime.now(UTC)
    log.info("maintenance_started", run_id=run_id, trigger=trigger.value)
    beating = asyncio.create_task(_beat(pool, run_id))
    reports: list[StepReport] = []
    errors: list[str] = []
    try:
        for step in steps:
            name = getattr(step, "__name__", "step")
            try:
                report = await step(pool, settings, moment)
            except STEP_ERRORS as exc:
                errors.append(f"{name}: {describe(exc)}")
                log.warning("maintenance_step_failed", step=name, error=describe(exc))
                continue
            reports.append(report)
            log.info("maintenance_step", step=report.name, summary=report.summary)
    except asyncio.CancelledError:
        errors.append("cancelled")
        raise
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        status = RunStatus.SUCCESS
        if errors:
            status = RunStatus.PARTIAL if reports else RunStatus.FAILED
        await _finish(pool, run_id, status, "; ".join(errors) or None, reports)
    log.info("maintenance_finished", run_id=run_id, status=status.value)
    return MaintenanceOutcome(run_id, status, reports, errors)


async def _finish(
    pool: Pool, run_id: int, status: RunStatus, error: str | None, reports: list[StepReport]
) -> None:
    report = [r.as_json() for r in reports]  # the pool's jsonb codec encodes it
    async with pool.acquire() as conn, conn.transaction():
        await runs.finish(conn, run_id, status, error)
        await conn.execute("UPDATE etl_runs SET report = $2 WHERE id = $1", run_id, report)
