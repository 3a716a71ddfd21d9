"""Queries on `checkpoints`: one row per source, the resume cursor and the last outcome.

The cursor moves inside each batch's transaction (`move_cursor`), so it never runs ahead of
or behind the data it covers. The outcome columns are written when a run ends (`record_end`):

- `last_success_at`: when a run last read its source to the end (`success`, or `partial` whose
  only problem was rejected records), at that run's finish time;
- `last_failure_at`: when a run last stopped on an error (`failed`, or `partial` cut short by a
  fetch error), at that run's finish time;
- `last_error`: the last run's error, NULL after a clean success;
- `status` and `last_run_id`: the last run's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptoetl.db.pool import Connection
from cryptoetl.models import RunStatus


async def mark_running(conn: Connection, run_ids: Mapping[str, int]) -> None:
    """Each source's run (`source -> run id`) has started: its checkpoint says `running` with
    that run, created (empty cursor) for a source that never ran."""
    await conn.execute(
        """
        INSERT INTO checkpoints (source, status, last_run_id, updated_at)
        SELECT source, 'running', run_id, clock_timestamp()
        FROM unnest($1::text[], $2::bigint[]) AS started (source, run_id)
        ON CONFLICT (source) DO UPDATE SET
            status = 'running', last_run_id = EXCLUDED.last_run_id,
            updated_at = EXCLUDED.updated_at
        """,
        list(run_ids),
        list(run_ids.values()),
    )


async def cursor(conn: Connection, source: str) -> dict[str, Any]:
    """The source's resume cursor (`{}` when it never committed a batch)."""
    value = await conn.fetchval("SELECT cursor FROM checkpoints WHERE source = $1", source)
    return dict(value) if isinstance(value, Mapping) else {}


async def move_cursor(conn: Connection, source: str, value: Mapping[str, Any]) -> None:
    """Set the resume cursor; call it in the transaction that commits the data it covers."""
    await conn.execute(
        "UPDATE checkpoints SET cursor = $2, updated_at = clock_timestamp() WHERE source = $1",
        source,
        dict(value),
    )


async def record_end(
    conn: Connection,
    source: str,
    run_id: int,
    status: RunStatus,
    at: datetime,
    error: str | None,
    *,
    read_to_end: bool,
) -> None:
    """Write the outcome of run `run_id` (ended at `at`) unless a later run already wrote one.

    `read_to_end`: the run fetched everything its source had (see the module docstring).
    """
    stopped_on_error = not read_to_end
    await conn.execute(
        """
        UPDATE checkpoints SET
            status = $3,
            last_run_id = $2,
            last_success_at = CASE WHEN $5 THEN $4 ELSE last_success_at END,
            last_failure_at = CASE WHEN $6 THEN $4 ELSE last_failure_at END,
            last_error = $7,
            updated_at = clock_timestamp()
        WHERE source = $1 AND (last_run_id IS NULL OR last_run_id <= $2)
        """,
        source,
        run_id,
        status.value,
        at,
        read_to_end,
        stopped_on_error,
        error,
    )
