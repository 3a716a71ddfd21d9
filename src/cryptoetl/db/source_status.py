"""What each source's runs add up to: its last run, its last success and failure, its rows.

Times of success and failure are the runs' `finished_at`, never their start: a run that started
at 10:00 and failed at 10:04 failed at 10:04.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from cryptoetl.db.pool import Connection


def _last_finished(status: str, alias: str) -> str:
    # served by etl_runs_source_status_finished (0004): one index probe per source
    return f"""
        LEFT JOIN LATERAL (
            SELECT r.finished_at, r.error FROM etl_runs AS r
            WHERE r.source = s.source AND r.status = '{status}' AND r.trigger <> 'backfill'
            ORDER BY r.finished_at DESC LIMIT 1
        ) AS {alias} ON true"""


async def source_overview(conn: Connection, sources: Sequence[str]) -> list[asyncpg.Record]:
    """Per source: its last run (any status), its last finished run, the finish times of its
    last success, last failure (failed or partial, with that run's error) and last run that
    loaded data (success or partial), and its row count. One row per name in `sources`, in
    that order. Backfill runs are left out: they say nothing about how fresh the live data is."""
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
            SELECT * FROM etl_runs AS r WHERE r.source = s.source AND r.trigger <> 'backfill'
            ORDER BY r.started_at DESC, r.id DESC LIMIT 1
        ) AS last ON true
        LEFT JOIN LATERAL (
            SELECT r.status, r.finished_at, r.error FROM etl_runs AS r
            WHERE r.source = s.source AND r.status <> 'running' AND r.trigger <> 'backfill'
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
    """Every source with at least one row in the unified history, by name."""
    rows = await conn.fetch("SELECT source FROM source_stats WHERE row_count > 0 ORDER BY source")
    return [row["source"] for row in rows]


async def stats_overview(conn: Connection, known: Sequence[str]) -> list[asyncpg.Record]:
    """`source_overview` of every source worth reporting: the `known` ones in their order,
    then any other that has rows, by name (what /api/v1/stats and / show)."""
    names = set(known) | set(await sources_with_rows(conn))
    order = {name: i for i, name in enumerate(known)}
    ordered = sorted(names, key=lambda name: (order.get(name, len(order)), name))
    return await source_overview(conn, ordered)
