"""Queries of backfill runs: their run row and progress, the cursors, the coins to backfill.

A backfill is an `etl_runs` row with trigger `backfill` (at most one running per source,
`etl_runs_one_backfill`; live runs of the source are not affected), a `backfill_runs` row with
what it was asked and how far it got, and one `backfill_cursors` row per (source, coin, range)
moved in the transaction of each chunk it covers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from cryptoetl.db.pool import Connection
from cryptoetl.db.runs import StartedRun

# How recent an observation must be, against the source's newest, to count as part of the
# latest snapshot (`--top N`).
SNAPSHOT_WINDOW = "1 day"


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far one (source, coin, range) got: committed up to `done_until`."""

    done_until: datetime
    state: str
    error: str | None


async def start_run(
    conn: Connection,
    source: str,
    owner: str,
    coins: Sequence[str],
    since: datetime,
    until: datetime,
    chunks_total: int,
) -> StartedRun | None:
    """Insert the backfill's run row and progress row; None when a backfill of `source` is
    already running (anywhere: the partial unique index decides)."""
    row = await conn.fetchrow(
        """
        INSERT INTO etl_runs (source, trigger, owner) VALUES ($1, 'backfill', $2)
        ON CONFLICT (source) WHERE status = 'running' AND trigger = 'backfill' DO NOTHING
        RETURNING id, source, started_at
        """,
        source,
        owner,
    )
    if row is None:
        return None
    await conn.execute(
        """
        INSERT INTO backfill_runs (run_id, coins, range_start, range_end, chunks_total)
        VALUES ($1, $2, $3, $4, $5)
        """,
        row["id"],
        list(coins),
        since,
        until,
        chunks_total,
    )
    return StartedRun(row["id"], row["source"], row["started_at"])


async def running_run(conn: Connection, source: str) -> int | None:
    """The id of the running backfill of `source`, if any."""
    value = await conn.fetchval(
        "SELECT id FROM etl_runs WHERE source = $1 AND status = 'running' AND trigger = 'backfill'",
        source,
    )
    return int(value) if value is not None else None


async def cursors(
    conn: Connection, source: str, coins: Sequence[str], since: datetime, until: datetime
) -> dict[str, Cursor]:
    """The cursors of `coins` for exactly this range, by coin."""
    rows = await conn.fetch(
        """
        SELECT coin_id, done_until, state, error FROM backfill_cursors
        WHERE source = $1 AND coin_id = any($2::text[]) AND range_start = $3 AND range_end = $4
        """,
        source,
        list(coins),
        since,
        until,
    )
    return {row["coin_id"]: Cursor(row["done_until"], row["state"], row["error"]) for row in rows}


@dataclass(frozen=True, slots=True)
class CursorMove:
    """A cursor's new position; written in the transaction of the data it covers."""

    source: str
    coin_id: str
    since: datetime
    until: datetime
    done_until: datetime
    state: str
    run_id: int
    error: str | None = None


async def move_cursor(conn: Connection, move: CursorMove) -> None:
    """Create or move the cursor of (source, coin, range)."""
    await conn.execute(
        """
        INSERT INTO backfill_cursors
            (source, coin_id, range_start, range_end, done_until, state, run_id, error)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (source, coin_id, range_start, range_end) DO UPDATE SET
            done_until = greatest(backfill_cursors.done_until, EXCLUDED.done_until),
            state = EXCLUDED.state, run_id = EXCLUDED.run_id, error = EXCLUDED.error,
            updated_at = now()
        """,
        move.source,
        move.coin_id,
        move.since,
        move.until,
        move.done_until,
        move.state,
        move.run_id,
        move.error,
    )


async def add_progress(
    conn: Connection,
    run_id: int,
    *,
    chunks: int = 0,
    coins: int = 0,
    current: str | None = None,
    coin_error: tuple[str, str] | None = None,
) -> None:
    """Count chunks and coins done, name the coin at work, record a coin's error."""
    await conn.execute(
        """
        UPDATE backfill_runs SET
            chunks_done = chunks_done + $2, coins_done = coins_done + $3,
            current_coin = coalesce($4, current_coin),
            coin_errors = CASE WHEN $5::text IS NULL THEN coin_errors
                               ELSE coin_errors || jsonb_build_array(
                                   jsonb_build_object('coin', $5::text, 'error', $6::text)) END
        WHERE run_id = $1
        """,
        run_id,
        chunks,
        coins,
        current,
        coin_error[0] if coin_error else None,
        coin_error[1] if coin_error else None,
    )


async def progress(conn: Connection, run_ids: Iterable[int]) -> dict[int, asyncpg.Record]:
    """The progress rows of the backfill runs among `run_ids`, by run id."""
    rows = await conn.fetch(
        """
        SELECT run_id, coins, range_start, range_end, chunks_total, chunks_done, coins_done,
               current_coin, coin_errors
        FROM backfill_runs WHERE run_id = any($1::bigint[])
        """,
        list(set(run_ids)),
    )
    return {row["run_id"]: row for row in rows}


async def top_coins(conn: Connection, source: str, count: int) -> list[asyncpg.Record]:
    """The first `count` coins of `source` by market cap in its latest snapshot (every coin's
    newest live observation within a day of the source's newest; rows written by a backfill
    are history, not a snapshot): coin_id, name, symbol."""
    return await conn.fetch(
        f"""
        WITH live AS (
            SELECT u.coin_id, u.name, u.symbol, u.market_cap, u.observed_at
            FROM unified_crypto_data AS u
            WHERE u.source = $1 AND NOT EXISTS (
                SELECT 1 FROM etl_runs AS r WHERE r.id = u.run_id AND r.trigger = 'backfill')
        ), newest AS (
            SELECT max(observed_at) AS at FROM live
        ), latest AS (
            SELECT DISTINCT ON (live.coin_id) live.coin_id, live.name, live.symbol,
                   live.market_cap
            FROM live, newest
            WHERE live.observed_at > newest.at - interval '{SNAPSHOT_WINDOW}'
            ORDER BY live.coin_id, live.observed_at DESC
        )
        SELECT coin_id, name, symbol FROM latest WHERE market_cap IS NOT NULL
        ORDER BY market_cap DESC, coin_id LIMIT $2
        """,  # noqa: S608 - a constant interval, no values
        source,
        count,
    )


async def known_names(
    conn: Connection, source: str, coin_ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """(name, symbol) of each coin of `coin_ids` from its newest observation that has both."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (coin_id) coin_id, name, symbol FROM unified_crypto_data
        WHERE source = $1 AND coin_id = any($2::text[])
          AND name IS NOT NULL AND symbol IS NOT NULL
        ORDER BY coin_id, observed_at DESC
        """,
        source,
        list(coin_ids),
    )
    return {row["coin_id"]: (row["name"], row["symbol"]) for row in rows}


async def recent(conn: Connection, limit: int) -> list[asyncpg.Record]:
    """The latest `limit` backfill runs with their progress, newest first (the dashboard)."""
    return await conn.fetch(
        """
        SELECT r.id, r.source, r.status, r.started_at, r.finished_at, r.inserted, r.unchanged,
               r.error, b.coins, b.range_start, b.range_end, b.chunks_total, b.chunks_done,
               b.coins_done, b.current_coin, b.coin_errors
        FROM etl_runs AS r JOIN backfill_runs AS b ON b.run_id = r.id
        WHERE r.trigger = 'backfill'
        ORDER BY r.started_at DESC, r.id DESC LIMIT $1
        """,
        limit,
    )
