"""Finding runs whose owner died and marking them failed, with the reason.

Kept apart from the pipeline (it needs no source) so that the API's lifespan can call
`reap_dead_runs(pool)` at start-up without importing the sources.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import asyncpg
import structlog

from cryptoetl.db import runs
from cryptoetl.db.pool import Connection, Pool
from cryptoetl.etl.owner import HEARTBEAT_SECONDS, MISSED_BEATS, death_reason
from cryptoetl.models import RunStatus

log = structlog.get_logger(__name__)

ORPHANED = "the run's task ended without recording its end (the database was unavailable)"


async def reap_dead_runs(
    pool: Pool,
    *,
    stale_after: float = HEARTBEAT_SECONDS * MISSED_BEATS,
    spare_owner: str | None = None,
    live: Collection[int] | None = None,
    host: str | None = None,
) -> list[runs.FinishedRun]:
    """Mark `failed`, with the reason, every running run whose owner is dead; return them.

    Call it at start-up (the API lifespan does) and before starting runs (`begin` does).
    Runs owned by `spare_owner` (the caller itself) are never reaped, except, when `live` (the
    caller's runs still executing, of every kind: `LiveRuns`) is given, those not in it: their
    task ended without recording the end, so only their row still says `running`.
    """

    def reason_of(row: asyncpg.Record) -> str | None:
        if row["owner"] == spare_owner:
            if live is None or row["id"] in live:
                return None
            return ORPHANED
        return death_reason(
            row["owner"], row["heartbeat_at"], row["now"], stale_after=stale_after, host=host
        )

    return await _fail_running(pool, reason_of, "dead_run_reaped")


async def end_runs_of(pool: Pool, owner: str, reason: str) -> list[runs.FinishedRun]:
    """Mark `failed` with `reason` every run of `owner` still running; return them.

    A stopping service calls it for itself once its run tasks are done: a run whose task was
    cancelled before it could record its end (between `begin` and its first step) ends here.
    """
    return await _fail_running(
        pool, lambda row: reason if row["owner"] == owner else None, "unfinished_run_ended"
    )


async def _fail_running(
    pool: Pool, reason_of: Callable[[asyncpg.Record], str | None], event: str
) -> list[runs.FinishedRun]:
    """Fail each running run for which `reason_of` gives a reason; log `event` for each."""
    ended: list[runs.FinishedRun] = []
    async with pool.acquire() as conn:
        for row in await runs.running(conn):
            reason = reason_of(row)
            if reason is None:
                continue
            finished = await _end(conn, row["id"], reason)
            if finished is not None:
                log.warning(event, run_id=finished.run_id, source=finished.source, reason=reason)
                ended.append(finished)
    return ended


async def _end(conn: Connection, run_id: int, reason: str) -> runs.FinishedRun | None:
    """Fail one running run and its checkpoint; None if it had ended on its own meanwhile."""
    async with conn.transaction():
        return await runs.end(conn, run_id, RunStatus.FAILED, reason, read_to_end=False)
