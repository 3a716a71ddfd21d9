"""Queries on `etl_runs`: one row per source per run.

Every write that belongs to a live run is fenced on `status = 'running'`: once a run has been
finished, or reaped as dead by another process, its late writes change nothing and the caller
is told (a `False` or `None` result), so a reaped run can never commit more data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from cryptoetl.db import checkpoints
from cryptoetl.db.pool import Connection
from cryptoetl.models import RunCounts, RunStatus, RunTrigger


@dataclass(frozen=True, slots=True)
class StartedRun:
    run_id: int
    source: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class FinishedRun:
    run_id: int
    source: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime
    counts: RunCounts
    batches: int
    error: str | None
    trigger: str | None = None


# Every column of etl_runs, in one order: what every reader of the table selects.
COLUMNS = """id, source, trigger, status, started_at, finished_at, heartbeat_at, owner,
             fetched, inserted, updated, unchanged, rejected, batches, error"""


def finished_run(row: asyncpg.Record) -> FinishedRun:
    """A run row (as `COLUMNS` reads it) that has ended, as a `FinishedRun`."""
    return FinishedRun(
        run_id=row["id"],
        source=row["source"],
        status=RunStatus(row["status"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        counts=RunCounts(
            fetched=row["fetched"],
            inserted=row["inserted"],
            updated=row["updated"],
            unchanged=row["unchanged"],
            rejected=row["rejected"],
        ),
        batches=row["batches"],
        error=row["error"],
        trigger=row["trigger"],
    )


async def start_runs(
    conn: Connection, sources: Sequence[str], trigger: RunTrigger, owner: str
) -> list[StartedRun]:
    """Insert a `running` row for each source that has none; return only the rows inserted.

    The partial unique index `etl_runs_one_running` makes this atomic across processes: a
    source that is already running (here or anywhere) is simply absent from the result. A
    backfill of the source (`etl_runs_one_backfill`, its own rule) does not count.
    """
    if trigger is RunTrigger.BACKFILL:
        raise ValueError("a backfill run starts through cryptoetl.db.backfill.start_run")
    rows = await conn.fetch(
        """
        INSERT INTO etl_runs (source, trigger, owner)
        SELECT source, $2, $3 FROM unnest($1::text[]) AS s(source)
        ON CONFLICT (source) WHERE status = 'running' AND trigger <> 'backfill' DO NOTHING
        RETURNING id, source, started_at
        """,
        list(sources),
        trigger.value,
        owner,
    )
    return [StartedRun(row["id"], row["source"], row["started_at"]) for row in rows]


async def running(
    conn: Connection, sources: Sequence[str] | None = None, *, backfill: bool | None = None
) -> list[asyncpg.Record]:
    """The `running` rows (of `sources`, or all): id, source, trigger, owner, started_at,
    heartbeat_at.

    `backfill`: True only backfill runs, False only live runs, None both.
    """
    return await conn.fetch(
        """
        SELECT id, source, trigger, owner, started_at, heartbeat_at, clock_timestamp() AS now
        FROM etl_runs
        WHERE status = 'running' AND ($1::text[] IS NULL OR source = any($1::text[]))
          AND ($2::boolean IS NULL OR (trigger = 'backfill') = $2)
        ORDER BY id
        """,
        list(sources) if sources is not None else None,
        backfill,
    )


async def heartbeat(conn: Connection, run_ids: Sequence[int]) -> set[int]:
    """Touch `heartbeat_at` of the runs still running; return the ids that were."""
    rows = await conn.fetch(
        """
        UPDATE etl_runs SET heartbeat_at = clock_timestamp()
        WHERE id = any($1::bigint[]) AND status = 'running'
        RETURNING id
        """,
        list(run_ids),
    )
    return {row["id"] for row in rows}


async def add_batch(conn: Connection, run_id: int, counts: RunCounts) -> bool:
    """Add one committed batch's counts to the run; False when the run is no longer running."""
    result = await conn.execute(
        """
        UPDATE etl_runs
        SET fetched = fetched + $2, inserted = inserted + $3, updated = updated + $4,
            unchanged = unchanged + $5, rejected = rejected + $6, batches = batches + 1,
            heartbeat_at = clock_timestamp()
        WHERE id = $1 AND status = 'running'
        """,
        run_id,
        counts.fetched,
        counts.inserted,
        counts.updated,
        counts.unchanged,
        counts.rejected,
    )
    return result == "UPDATE 1"


async def finish(
    conn: Connection, run_id: int, status: RunStatus, error: str | None
) -> FinishedRun | None:
    """End a running run with its final status; None when it had already ended (reaped)."""
    row = await conn.fetchrow(
        f"""
        UPDATE etl_runs SET status = $2, error = $3, finished_at = clock_timestamp()
        WHERE id = $1 AND status = 'running'
        RETURNING {COLUMNS}
        """,  # noqa: S608 - a constant column list, no values
        run_id,
        status.value,
        error,
    )
    return finished_run(row) if row is not None else None


async def end(
    conn: Connection, run_id: int, status: RunStatus, error: str | None, *, read_to_end: bool
) -> FinishedRun | None:
    """Finish a running run and write its outcome to its source's checkpoint; call it in a
    transaction, so that both change together. None when the run had already ended (reaped,
    or ended on its own meanwhile): nothing is written then.

    `read_to_end`: the run fetched everything its source had (see `checkpoints.record_end`).
    A backfill run leaves the checkpoint alone: it says how the live data is doing.
    """
    finished = await finish(conn, run_id, status, error)
    if finished is not None and finished.trigger != RunTrigger.BACKFILL:
        await checkpoints.record_end(
            conn,
            finished.source,
            finished.run_id,
            finished.status,
            finished.finished_at,
            finished.error,
            read_to_end=read_to_end,
        )
    return finished


async def get(conn: Connection, run_id: int) -> asyncpg.Record | None:
    """The run `run_id` (every column, any status), or None when there is no such run."""
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM etl_runs WHERE id = $1", run_id)  # noqa: S608


async def get_finished(conn: Connection, run_id: int) -> FinishedRun | None:
    """A finished run, or None while it runs or when there is no such run."""
    row = await get(conn, run_id)
    return finished_run(row) if row is not None and row["status"] != "running" else None


async def get_many(conn: Connection, run_ids: Iterable[int]) -> dict[int, asyncpg.Record]:
    """The runs of `run_ids` that exist, by id, in one query."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM etl_runs WHERE id = any($1::bigint[])",  # noqa: S608
        list(set(run_ids)),
    )
    return {row["id"]: row for row in rows}


async def latest(conn: Connection) -> asyncpg.Record | None:
    """The most recently started run of any source."""
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM etl_runs ORDER BY started_at DESC, id DESC LIMIT 1"  # noqa: S608
    )


def _run_filter(source: str | None, status: str | None) -> tuple[str, list[str]]:
    where, args = [], []
    if source is not None:
        args.append(source)
        where.append(f"source = ${len(args)}")
    if status is not None:
        args.append(status)
        where.append(f"status = ${len(args)}")
    return (f"WHERE {' AND '.join(where)}" if where else ""), args


async def list_page(
    conn: Connection, *, source: str | None, status: str | None, limit: int, offset: int
) -> tuple[int, list[asyncpg.Record]]:
    """The exact number of matching runs, and one page of them, newest first."""
    where, args = _run_filter(source, status)
    total = await conn.fetchval(f"SELECT count(*) FROM etl_runs {where}", *args)  # noqa: S608
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM etl_runs {where} ORDER BY started_at DESC, id DESC"  # noqa: S608
        f" LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
        *args,
        limit,
        offset,
    )
    return int(total), rows


async def totals(conn: Connection) -> list[asyncpg.Record]:
    """Every run summed by source and status, with the last finish time (for /metrics)."""
    return await conn.fetch(
        """
        SELECT source, status, count(*) AS runs,
               sum(fetched) AS fetched, sum(inserted) AS inserted, sum(updated) AS updated,
               sum(unchanged) AS unchanged, sum(rejected) AS rejected,
               max(finished_at) AS last_finished_at
        FROM etl_runs GROUP BY source, status ORDER BY source, status
        """
    )
