"""Reading the unified history for an export: which (source, UTC day) slices exist, and each
slice's rows in batches through a server-side cursor, so memory stays flat however long the
history is.

Call both inside one REPEATABLE READ transaction (`snapshot`): the plan's counts and the rows
then come from the same snapshot, and a load committing meanwhile changes neither.

Timestamps come out as integer microseconds since the epoch (UTC), which Arrow takes as they
are; no `datetime` object is built per row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from cryptoetl.db.pool import Connection

# The exported columns, in file order (`source` and the day are the partition path).
COLUMNS = (
    "id",
    "coin_id",
    "name",
    "symbol",
    "price_usd",
    "market_cap",
    "volume_24h",
    "observed_at",
    "ingested_at",
    "run_id",
)
_MICROS = "(extract(epoch FROM {0}) * 1000000)::bigint"
_SELECT_ROWS = f"""
    SELECT id, coin_id, name, symbol, price_usd, market_cap, volume_24h,
           {_MICROS.format("observed_at")}, {_MICROS.format("ingested_at")}, run_id
    FROM unified_crypto_data
    WHERE source = $1 AND observed_at >= $2 AND observed_at < $3
    ORDER BY coin_id, observed_at
"""
_PLAN = """
    SELECT source, (observed_at AT TIME ZONE 'UTC')::date AS day, count(*) AS rows,
           {_MICROS} AS last_ingested
    FROM unified_crypto_data
    WHERE ($1::timestamptz IS NULL OR observed_at >= $1)
      AND ($2::timestamptz IS NULL OR observed_at < $2)
      AND ($3::text[] IS NULL OR source = ANY($3))
    GROUP BY 1, 2
    ORDER BY 1, 2
""".replace("{_MICROS}", _MICROS.format("max(ingested_at)"))

# The hourly rollups (`unified_hourly`, one row per source, coin and UTC hour), exported the
# same way. A rollup row has no write time: a day's fingerprint is a hash of its rows instead.
HOURLY_COLUMNS = (
    "coin_id",
    "hour",
    "open",
    "high",
    "low",
    "close",
    "market_cap",
    "volume_24h",
    "count",
    "open_at",
    "close_at",
)
_SELECT_HOURLY = f"""
    SELECT coin_id, {_MICROS.format("hour")}, open, high, low, close, market_cap, volume_24h,
           count, {_MICROS.format("open_at")}, {_MICROS.format("close_at")}
    FROM unified_hourly
    WHERE source = $1 AND hour >= $2 AND hour < $3
    ORDER BY coin_id, hour
"""
_PLAN_HOURLY = """
    SELECT source, (hour AT TIME ZONE 'UTC')::date AS day, count(*) AS rows,
           (sum(hashtextextended(h::text, 0)) % 9223372036854775807)::bigint AS last_ingested
    FROM unified_hourly AS h
    WHERE ($1::timestamptz IS NULL OR hour >= $1)
      AND ($2::timestamptz IS NULL OR hour < $2)
      AND ($3::text[] IS NULL OR source = ANY($3))
    GROUP BY 1, 2
    ORDER BY 1, 2
"""
TABLES = ("observations", "hourly")


@dataclass(frozen=True, slots=True)
class DaySlice:
    """One source's observations of one UTC day: how many, and when the newest was written
    (with the count, what tells a changed day from an unchanged one)."""

    source: str
    day: date
    rows: int
    last_ingested_us: int

    @property
    def start(self) -> datetime:
        return datetime.combine(self.day, time(), UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)


def day_start(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), UTC)


@asynccontextmanager
async def snapshot(conn: Connection) -> AsyncIterator[None]:
    """A read-only REPEATABLE READ transaction: one snapshot for the plan and every slice."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        yield


async def plan_days(
    conn: Connection,
    *,
    since: date | None = None,
    until: date | None = None,
    sources: Sequence[str] | None = None,
    table: str = "observations",
) -> list[DaySlice]:
    """The (source, day) slices with rows, days `since`..`until` inclusive, oldest first, of
    the observations or (`table="hourly"`) of the hourly rollups."""
    end = None if until is None else until + timedelta(days=1)
    rows = await conn.fetch(
        _PLAN_HOURLY if table == "hourly" else _PLAN,
        day_start(since),
        day_start(end),
        list(sources) if sources else None,
    )
    return [DaySlice(r["source"], r["day"], r["rows"], r["last_ingested"]) for r in rows]


async def slice_rows(
    conn: Connection, part: DaySlice, batch_rows: int, table: str = "observations"
) -> AsyncIterator[list[asyncpg.Record]]:
    """The slice's rows (`COLUMNS`, or `HOURLY_COLUMNS`) in batches of at most `batch_rows`,
    ordered by coin and time, through a server-side cursor (inside the caller's
    transaction)."""
    sql = _SELECT_HOURLY if table == "hourly" else _SELECT_ROWS
    cursor = await conn.cursor(sql, part.source, part.start, part.end)
    while True:
        batch = await cursor.fetch(batch_rows)
        if not batch:
            return
        yield batch
