"""Queries about ETL runs for the API: per-source overview, run history, one run's rejections.

Times of success and failure are the runs' `finished_at`, never their start: a run that started
at 10:00 and failed at 10:04 failed at 10:04.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from cryptoetl.config import KNOWN_SOURCES
from cryptoetl.db.pool import Connection

RUN_COLUMNS = """
    id, source, trigger, status, started_at, finished_at, heartbeat_at, owner,
    fetched, inserted, updated, unchanged, rejected, batches, error
"""


def _last_finished(status: str, alias: str) -> str:
    # served by etl_runs_source_status_finished (0004): one index probe per source
    return f"""
        LEFT JOIN LATERAL (
            SELECT r.finished_at, r.error FROM etl_runs AS r
            WHERE r.source = s.source AND r.status = '{status}'
            ORDER BY r.finished_at DESC LIMIT 1
        ) AS {alias} ON true"""


async def source_overview(conn: Connection, sources: Sequence[str]) -> list[asyncpg.Record]:
    """Per source: its last run (any status), its last finished run, the finish times of its
    last success, last failure (failed or partial, with that run's error) and last run that
    loaded data (success or partial), and its row count. One row per name in `sources`, in
    that order."""
    return await conn.fetch(
        f"""
        SELECT s.source,
               coalesce(st.row_count, 0) AS row_count,
               last.id AS run_id, last.trigger, last.status, last.started_at, last.finished_at,
               last.fetched, last.inserted, last.updated, last.unchanged, last.rejected,
               last.batches, last.error,
               done.status AS done_status, done.finished_at AS done_at, done.error AS done_error,
               ok.finished_at AS last_success_at,
               greatest(failed.finished_at, partial.finished_at) AS last_failure_at,
               CASE WHEN partial.finished_at IS NULL
                         OR failed.finished_at >= partial.finished_at THEN failed.error
                    ELSE partial.error END AS last_failure_error,
               greatest(ok.finished_at, partial.finished_at) AS last_loaded_at
        FROM unnest($1::text[]) WITH ORDINALITY AS s(source, position)
        LEFT JOIN source_stats AS st ON st.source = s.source
        LEFT JOIN LATERAL (
            SELECT * FROM etl_runs AS r WHERE r.source = s.source
            ORDER BY r.started_at DESC, r.id DESC LIMIT 1
        ) AS last ON true
        LEFT JOIN LATERAL (
            SELECT r.status, r.finished_at, r.error FROM etl_runs AS r
            WHERE r.source = s.source AND r.status <> 'running'
            ORDER BY r.started_at DESC, r.id DESC LIMIT 1
        ) AS done ON true
        {_last_finished("success", "ok")}
        {_last_finished("failed", "failed")}
        {_last_finished("partial", "partial")}
        ORDER BY s.position
        """,
        list(sources),
    )


async def sources_with_rows(conn: Connection) -> list[str]:
    """Every source `source_stats` knows (the known ones, and any an operator loaded)."""
    rows = await conn.fetch("SELECT source FROM source_stats ORDER BY source")
    return [row["source"] for row in rows]


async def stats_overview(conn: Connection) -> list[asyncpg.Record]:
    """`source_overview` of every source worth reporting: the known ones in their usual
    order, then any other that has rows, by name (what /api/v1/stats and / show)."""
    names = set(KNOWN_SOURCES) | set(await sources_with_rows(conn))
    order = {name: i for i, name in enumerate(KNOWN_SOURCES)}
    ordered = sorted(names, key=lambda name: (order.get(name, len(order)), name))
    return await source_overview(conn, ordered)


def _run_filter(source: str | None, status: str | None) -> tuple[str, list[str]]:
    where, args = [], []
    if source is not None:
        args.append(source)
        where.append(f"source = ${len(args)}")
    if status is not None:
        args.append(status)
        where.append(f"status = ${len(args)}")
    return (f"WHERE {' AND '.join(where)}" if where else ""), args


async def list_runs(
    conn: Connection, *, source: str | None, status: str | None, limit: int, offset: int
) -> tuple[int, list[asyncpg.Record]]:
    """The exact number of matching runs, and one page of them, newest first."""
    where, args = _run_filter(source, status)
    total = await conn.fetchval(f"SELECT count(*) FROM etl_runs {where}", *args)
    rows = await conn.fetch(
        f"SELECT {RUN_COLUMNS} FROM etl_runs {where} ORDER BY started_at DESC, id DESC"
        f" LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
        *args,
        limit,
        offset,
    )
    return int(total), rows


async def get_run(conn: Connection, run_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {RUN_COLUMNS} FROM etl_runs WHERE id = $1", run_id)


async def get_runs(conn: Connection, run_ids: Iterable[int]) -> dict[int, asyncpg.Record]:
    """The runs of `run_ids` that exist, by id, in one query."""
    rows = await conn.fetch(
        f"SELECT {RUN_COLUMNS} FROM etl_runs WHERE id = any($1::bigint[])",
        list(set(run_ids)),
    )
    return {row["id"]: row for row in rows}


async def rejected_of_run(
    conn: Connection, run_id: int, limit: int
) -> tuple[int, list[asyncpg.Record]]:
    """Rejected records last seen in this run: how many, and the first `limit` of them."""
    count = await conn.fetchval(
        "SELECT count(*) FROM rejected_records WHERE last_run_id = $1", run_id
    )
    rows = await conn.fetch(
        """
        SELECT id, locator, file, line_no, reason, raw, seen_count, first_run_id,
               first_seen_at, last_seen_at
        FROM rejected_records WHERE last_run_id = $1 ORDER BY id LIMIT $2
        """,
        run_id,
        limit,
    )
    return int(count), rows


async def run_totals(conn: Connection) -> list[asyncpg.Record]:
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
