"""Queries about the service's own state: is the database there, what ran last."""

from __future__ import annotations

import asyncpg

from cryptoetl.db.pool import DATABASE_ERRORS, Connection, Pool

PING_TIMEOUT = 2.0


async def ping(pool: Pool, within: float = PING_TIMEOUT) -> bool:
    """True when a connection answers `SELECT 1` within `within` seconds."""
    try:
        async with pool.acquire(timeout=within) as conn:
            return bool(await conn.fetchval("SELECT 1", timeout=within))
    except DATABASE_ERRORS:
        return False


async def latest_run(conn: Connection) -> asyncpg.Record | None:
    """The most recently started run of any source."""
    return await conn.fetchrow(
        """
        SELECT id, source, trigger, status, started_at, finished_at,
               fetched, inserted, updated, unchanged, rejected, error
        FROM etl_runs
        ORDER BY started_at DESC, id DESC
        LIMIT 1
        """
    )
