"""Thinning: old partitions of the unified history reduced to the last observation of each
(source, coin_id, UTC hour), by replacing the whole partition (docs/rollups.md).

    report = await thin(pool, full_resolution_days=30, now=datetime.now(UTC))

A partition is thinned when its whole range is older than `now - full_resolution_days` and it
was not thinned before (`unified_thinned`). For each, in one transaction:

1. `LOCK ... IN SHARE MODE` on that partition only: reads go on, and so do loads, unless they
   write into that old partition (they wait for it, then commit);
2. the hours of the partition are counted, and every hour whose rollup (`unified_hourly`)
   does not hold all of its observations is rolled up from them first, so no high or low is
   lost;
3. a copy keeping the last observation of each hour is built as a table of its own, with the
   partition's indexes; when it keeps every row (hourly or coarser data) nothing is replaced;
4. the swap: the old partition is detached and dropped and the copy attached in its place,
   under a brief ACCESS EXCLUSIVE lock of the parent (`lock_timeout` short, retried; a
   partition that stays busy is left for the next run); `source_stats` loses the rows removed.

No row is deleted one by one, nothing outside that partition is rewritten.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import structlog

from cryptoetl.db.pool import Connection, Pool

log = structlog.get_logger(__name__)

UNIFIED = "unified_crypto_data"
SWAP_LOCK_TIMEOUT = "200ms"
SWAP_ATTEMPTS = 25
SWAP_PAUSE_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class ThinnedPartition:
    partition: str
    lo: datetime
    hi: datetime
    rows_before: int
    rows_after: int
    rolled_up: int  # hours rolled up by thinning itself (0 when the triggers had them all)
    lock_ms: float  # how long the parent was locked for the swap (0: nothing replaced)


@dataclass(slots=True)
class ThinReport:
    cutoff: datetime | None
    thinned: list[ThinnedPartition] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # left for the next run

    @property
    def rows_removed(self) -> int:
        return sum(p.rows_before - p.rows_after for p in self.thinned)


async def _candidates(conn: Connection, cutoff: datetime) -> list[tuple[str, datetime, datetime]]:
    partitioned = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = $1::regclass)",
        UNIFIED,
    )
    if not partitioned:
        return []
    rows = await conn.fetch(
        """
        SELECT b.name, b.lo, b.hi FROM partition_bounds($1::regclass) AS b
        WHERE b.hi <= $2
          AND NOT EXISTS (SELECT 1 FROM unified_thinned AS t WHERE t.lo = b.lo AND t.hi = b.hi)
        ORDER BY b.lo
        """,
        UNIFIED,
        cutoff,
    )
    return [(row["name"], row["lo"], row["hi"]) for row in rows]


_HOURS = """
CREATE TEMP TABLE thin_hours ON COMMIT DROP AS
SELECT source, coin_id, date_trunc('hour', observed_at, 'UTC') AS hour,
       max(observed_at) AS last_at, count(*) AS stored
FROM {part} GROUP BY 1, 2, 3
"""
# Hours whose rollup misses observations (written while the triggers were off, say): rolled up
# again from the partition, which still holds every one of them.
_ROLL_UP_MISSING = """
WITH missing AS (
    SELECT t.source, t.coin_id, t.hour FROM thin_hours AS t
    LEFT JOIN unified_hourly AS h USING (source, coin_id, hour)
    WHERE h.count IS NULL OR h.count < t.stored
), fresh AS (
    SELECT m.source, m.coin_id, m.hour,
           (array_agg(p.price_usd ORDER BY p.observed_at))[1] AS open,
           min(p.observed_at) AS open_at, max(p.price_usd) AS high, min(p.price_usd) AS low,
           (array_agg(p.price_usd ORDER BY p.observed_at DESC))[1] AS close,
           max(p.observed_at) AS close_at,
           (array_agg(p.market_cap ORDER BY p.observed_at DESC)
                FILTER (WHERE p.market_cap IS NOT NULL))[1] AS market_cap,
           max(p.observed_at) FILTER (WHERE p.market_cap IS NOT NULL) AS cap_at,
           (array_agg(p.volume_24h ORDER BY p.observed_at DESC)
                FILTER (WHERE p.volume_24h IS NOT NULL))[1] AS volume_24h,
           max(p.observed_at) FILTER (WHERE p.volume_24h IS NOT NULL) AS volume_at,
           count(*) AS count
    FROM missing AS m
    JOIN {part} AS p ON p.source = m.source AND p.coin_id = m.coin_id
     AND p.observed_at >= m.hour AND p.observed_at < m.hour + interval '1 hour'
    GROUP BY 1, 2, 3
)
INSERT INTO unified_hourly AS h
    (source, coin_id, hour, open, open_at, high, low, close, close_at,
     market_cap, cap_at, volume_24h, volume_at, count)
SELECT * FROM fresh
ON CONFLICT (source, coin_id, hour) DO UPDATE SET
    open = EXCLUDED.open, open_at = EXCLUDED.open_at, high = EXCLUDED.high,
    low = EXCLUDED.low, close = EXCLUDED.close, close_at = EXCLUDED.close_at,
    market_cap = EXCLUDED.market_cap, cap_at = EXCLUDED.cap_at,
    volume_24h = EXCLUDED.volume_24h, volume_at = EXCLUDED.volume_at, count = EXCLUDED.count
"""
_BUILD = """
CREATE TABLE {copy} (LIKE {part} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES
                     INCLUDING STORAGE INCLUDING COMPRESSION);
INSERT INTO {copy}
SELECT p.* FROM {part} AS p
JOIN thin_hours AS t ON t.source = p.source AND t.coin_id = p.coin_id
 AND t.last_at = p.observed_at;
ALTER TABLE {copy} ADD CONSTRAINT {check}
    CHECK (observed_at >= '{lo}'::timestamptz AND observed_at < '{hi}'::timestamptz);
"""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _swap(
    conn: Connection, part: str, copy: str, lo: datetime, hi: datetime, attempts: int
) -> float:
    """Detach and drop `part`, attach `copy` in its place under its name; returns when the
    parent's lock was taken (`time.perf_counter()`), held until the transaction ends. Raises
    `asyncpg.LockNotAvailableError` when the parent stays busy."""
    for attempt in range(attempts):
        try:
            async with conn.transaction():  # a savepoint: a timed-out attempt is undone alone
                await conn.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
                await conn.execute(f"LOCK TABLE {UNIFIED} IN ACCESS EXCLUSIVE MODE")
                locked = time.perf_counter()
                await conn.execute(
                    f"ALTER TABLE {UNIFIED} DETACH PARTITION {_ident(part)};"
                    f"DROP TABLE {_ident(part)};"
                    f"ALTER TABLE {_ident(copy)} RENAME TO {_ident(part)};"
                    f"ALTER TABLE {UNIFIED} ATTACH PARTITION {_ident(part)}"
                    f" FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}');"
                    f"ALTER TABLE {_ident(part)} DROP CONSTRAINT {_ident(copy + '_bound')};"
                )
                return locked
        except asyncpg.LockNotAvailableError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(SWAP_PAUSE_SECONDS)
    raise AssertionError("unreachable")


async def thin_partition(
    conn: Connection, part: str, lo: datetime, hi: datetime, attempts: int = SWAP_ATTEMPTS
) -> ThinnedPartition:
    """Thin one partition (see the module's docstring), in one transaction on `conn`."""
    quoted = _ident(part)
    copy = part + "_thin"
    locked: float | None = None
    async with conn.transaction():
        await conn.execute(f"LOCK TABLE {quoted} IN SHARE MODE")
        await conn.execute(_HOURS.format(part=quoted))
        rolled_up = int((await conn.execute(_ROLL_UP_MISSING.format(part=quoted))).split()[-1])
        counts = await conn.fetch(
            "SELECT source, sum(stored)::bigint AS before, count(*) AS after"
            " FROM thin_hours GROUP BY source"
        )
        rows_before = sum(int(r["before"]) for r in counts)
        rows_after = sum(int(r["after"]) for r in counts)
        if rows_before == 0:  # nothing yet (a partition made ahead): looked at again next time
            return ThinnedPartition(part, lo, hi, 0, 0, 0, 0.0)
        if rows_after < rows_before:
            await conn.execute(
                _BUILD.format(
                    copy=_ident(copy),
                    part=quoted,
                    check=_ident(copy + "_bound"),
                    lo=lo.isoformat(),
                    hi=hi.isoformat(),
                )
            )
            await conn.execute(f"ANALYZE {_ident(copy)}")
            locked = await _swap(conn, part, copy, lo, hi, attempts)
            # after the swap: while the parent is locked no load holds these rows
            await conn.executemany(
                "UPDATE source_stats SET row_count = row_count - $2,"
                " data_version = data_version + 1, updated_at = now() WHERE source = $1",
                [(r["source"], int(r["before"]) - int(r["after"])) for r in counts],
            )
        await conn.execute(
            "INSERT INTO unified_thinned (partition, lo, hi, rows_before, rows_after)"
            " VALUES ($1, $2, $3, $4, $5)",
            part,
            lo,
            hi,
            rows_before,
            rows_after,
        )
    lock_ms = 0.0 if locked is None else (time.perf_counter() - locked) * 1000
    return ThinnedPartition(part, lo, hi, rows_before, rows_after, rolled_up, lock_ms)


async def thin(
    pool: Pool, full_resolution_days: int, now: datetime, *, attempts: int = SWAP_ATTEMPTS
) -> ThinReport:
    """Thin every partition entirely older than `full_resolution_days` before `now` that was
    not thinned yet; 0 days keeps everything. A partition whose swap finds the parent busy
    `attempts` times is left for the next run (`ThinReport.busy`)."""
    if full_resolution_days <= 0:
        return ThinReport(cutoff=None)
    cutoff = now - timedelta(days=full_resolution_days)
    report = ThinReport(cutoff=cutoff)
    async with pool.acquire() as conn:
        for part, lo, hi in await _candidates(conn, cutoff):
            try:
                done = await thin_partition(conn, part, lo, hi, attempts)
            except asyncpg.LockNotAvailableError:
                log.warning("thin_partition_busy", partition=part)
                report.busy.append(part)
                continue
            if not done.rows_before:
                continue
            log.info(
                "thin_partition",
                partition=part,
                rows_before=done.rows_before,
                rows_after=done.rows_after,
                lock_ms=round(done.lock_ms, 1),
            )
            report.thinned.append(done)
    return report
