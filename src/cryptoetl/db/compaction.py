"""Compaction of the hourly rollups: each closed partition of `unified_hourly` replaced by a
sorted copy of its rows filled to 100 %, with fresh indexes (docs/rollups.md).

    report = await compact(pool, now=datetime.now(UTC))

While an hour is live its rollup row is updated by every batch (11 times at 5-minute fetches);
the table's pages are filled to 80 % so those updates stay HOT, and a closed partition keeps
that free space and the pruned versions' leftovers for good (~250-280 bytes a row against ~211
for a sorted copy). A partition is closed when its upper bound is at or before the start of
the previous UTC day (`closed_before`): live batches write an hour's rollup within minutes of
its end, the margin of a whole day covers a late or retried run. A closed partition is
compacted once, and again only after something wrote into it (a backfill, a CSV of old data).

For each partition, without ever holding a lock that makes a load wait for more than a moment:

1. a row trigger (`unified_hourly_written`, with the partition's bounds) is put on the
   partition, once: from then on each transaction that writes into it leaves its id in
   `unified_hourly_writes`. Creating it waits for the partition's current writers and holds
   new ones for that moment only (`lock_timeout` short, retried);
2. the copy is built in a REPEATABLE READ transaction, from that transaction's snapshot: a
   table of its own (`<partition>_compact`, fillfactor 100), rows in key order, then its
   indexes and the same trigger. Loads go on writing, into this partition too;
3. the swap, under a brief ACCESS EXCLUSIVE lock of `unified_hourly` (`lock_timeout` short,
   retried): if a transaction the copy's snapshot did not see wrote into the partition, the
   copy is stale: it is dropped and built again (the partition is left for the next run after
   a few tries). Otherwise the partition is detached and dropped, the copy renamed and
   attached in its place, its write log cleared and the compaction recorded in
   `unified_hourly_compacted`.

Step 3 re-checks instead of locking writers out of the partition during the copy: a load that
waits for that partition holds its lock on `unified_hourly`, so the swap could never take
its own lock until the copy's transaction gave up.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import structlog

from cryptoetl.db.pool import Connection, Pool

log = structlog.get_logger(__name__)

HOURLY = "unified_hourly"
TRIGGER_FUNCTION = "unified_hourly_written"
LOCK_TIMEOUT = "200ms"
LOCK_ATTEMPTS = 25
LOCK_PAUSE_SECONDS = 0.2
BUILD_ATTEMPTS = 3  # copies built for one partition before it is left for the next run


@dataclass(frozen=True, slots=True)
class CompactedPartition:
    partition: str
    lo: datetime
    hi: datetime
    rows: int
    bytes_before: int
    bytes_after: int
    copies: int  # copies built (more than one: writes arrived during a copy)
    lock_ms: float  # how long unified_hourly was locked for the swap


@dataclass(slots=True)
class CompactReport:
    cutoff: datetime
    compacted: list[CompactedPartition] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # left for the next run

    @property
    def bytes_before(self) -> int:
        return sum(p.bytes_before for p in self.compacted)

    @property
    def bytes_after(self) -> int:
        return sum(p.bytes_after for p in self.compacted)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.compacted)


class _Busy(Exception):
    """The partition stayed busy (locks, or writes during every copy): left for next run."""


def closed_before(now: datetime) -> datetime:
    """Partitions ending at or before this instant are closed: the previous UTC day's start."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _candidates(conn: Connection, cutoff: datetime) -> list[tuple[str, datetime, datetime]]:
    """Closed partitions never compacted, or written into since they were."""
    rows = await conn.fetch(
        """
        SELECT b.name, b.lo, b.hi FROM partition_bounds($1::regclass) AS b
        WHERE b.hi <= $2
          AND (NOT EXISTS (SELECT 1 FROM unified_hourly_compacted AS c
                           WHERE c.lo = b.lo AND c.hi = b.hi)
               OR EXISTS (SELECT 1 FROM unified_hourly_writes AS w
                          WHERE w.lo = b.lo AND w.hi = b.hi))
        ORDER BY b.lo
        """,
        HOURLY,
        cutoff,
    )
    return [(row["name"], row["lo"], row["hi"]) for row in rows]


async def _with_lock_retries(conn: Connection, attempts: int, work: str) -> None:
    """Run `work` (statements) in a transaction with a short lock_timeout, retried while a
    lock is not available; `_Busy` after `attempts` tries."""
    for attempt in range(attempts):
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                await conn.execute(work)
                return
        except asyncpg.LockNotAvailableError:
            if attempt == attempts - 1:
                raise _Busy from None
            await asyncio.sleep(LOCK_PAUSE_SECONDS)
    raise AssertionError("unreachable")


def _trigger_sql(table: str, lo: datetime, hi: datetime) -> str:
    bounds = f"'{lo.isoformat()}', '{hi.isoformat()}'"
    return (
        f"CREATE TRIGGER {TRIGGER_FUNCTION} AFTER INSERT OR UPDATE OR DELETE ON {_ident(table)}"
        f" FOR EACH ROW EXECUTE FUNCTION {TRIGGER_FUNCTION}({bounds});"
        f"CREATE TRIGGER {TRIGGER_FUNCTION}_truncate AFTER TRUNCATE ON {_ident(table)}"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {TRIGGER_FUNCTION}({bounds});"
    )


async def _watch(conn: Connection, part: str, lo: datetime, hi: datetime, attempts: int) -> None:
    """Step 1: the write-logging trigger on the partition (once)."""
    watched = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2)",
        _ident(part),
        TRIGGER_FUNCTION,
    )
    if not watched:
        await _with_lock_retries(conn, attempts, _trigger_sql(part, lo, hi))


_INDEXES = """
SELECT con.conname IS NOT NULL AS is_constraint, pg_get_constraintdef(con.oid) AS condef,
       pg_get_indexdef(i.indexrelid) AS indexdef
FROM pg_index AS i
LEFT JOIN pg_constraint AS con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
WHERE i.indrelid = $1::regclass
ORDER BY i.indexrelid
"""


async def _build(
    conn: Connection, part: str, copy: str, lo: datetime, hi: datetime
) -> tuple[str, int, int, int]:
    """Step 2: the sorted copy; returns its snapshot, rows, and the bytes before and after."""
    await conn.execute(f"DROP TABLE IF EXISTS {_ident(copy)}")  # a crashed run's leftover
    async with conn.transaction(isolation="repeatable_read"):
        snapshot = str(await conn.fetchval("SELECT pg_current_snapshot()::text"))
        before = int(await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", part))
        await conn.execute(
            f"CREATE TABLE {_ident(copy)} (LIKE {_ident(part)} INCLUDING DEFAULTS"
            " INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)"
            " WITH (fillfactor = 100)"
        )
        status = await conn.execute(
            f"INSERT INTO {_ident(copy)} SELECT * FROM {_ident(part)}"  # noqa: S608
            " ORDER BY source, coin_id, hour"
        )
        rows = int(status.split()[-1])
        for index in await conn.fetch(_INDEXES, _ident(part)):
            if index["is_constraint"]:
                await conn.execute(f"ALTER TABLE {_ident(copy)} ADD {index['condef']}")
            else:
                await conn.execute(
                    re.sub(
                        r"^CREATE (UNIQUE )?INDEX \S+ ON \S+ ",
                        lambda m: f"CREATE {m.group(1) or ''}INDEX ON {_ident(copy)} ",
                        index["indexdef"],
                    )
                )
        await conn.execute(
            f"ALTER TABLE {_ident(copy)} ADD CONSTRAINT {_ident(copy + '_bound')}"
            f" CHECK (hour >= '{lo.isoformat()}'::timestamptz"
            f" AND hour < '{hi.isoformat()}'::timestamptz);"
            + _trigger_sql(copy, lo, hi)
            + f"ANALYZE {_ident(copy)}"
        )
        after = int(await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", copy))
    return snapshot, rows, before, after


_RECORD = """
INSERT INTO unified_hourly_compacted (partition, lo, hi, rows, bytes_before, bytes_after)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (lo, hi) DO UPDATE SET
    partition = EXCLUDED.partition, rows = EXCLUDED.rows, bytes_before = EXCLUDED.bytes_before,
    bytes_after = EXCLUDED.bytes_after, compacted_at = now()
"""
_MISSED = """
SELECT EXISTS (SELECT 1 FROM unified_hourly_writes
               WHERE lo = $1 AND hi = $2 AND NOT pg_visible_in_snapshot(xid, $3::text::pg_snapshot))
"""


async def _swap(
    conn: Connection, part: str, copy: str, lo: datetime, hi: datetime, snapshot: str,
    sizes: tuple[int, int, int], attempts: int,
) -> float | None:  # fmt: skip
    """Step 3: the copy in the partition's place, and the compaction recorded (`sizes`: rows,
    bytes before, bytes after); returns when the lock was taken, or None (nothing changed)
    when a write the copy missed was found."""
    for attempt in range(attempts):
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                await conn.execute(f"LOCK TABLE {HOURLY} IN ACCESS EXCLUSIVE MODE")
                locked = time.perf_counter()
                if await conn.fetchval(_MISSED, lo, hi, snapshot):
                    return None
                await conn.execute(
                    f"ALTER TABLE {HOURLY} DETACH PARTITION {_ident(part)};"
                    f"DROP TABLE {_ident(part)};"
                    f"ALTER TABLE {_ident(copy)} RENAME TO {_ident(part)};"
                    f"ALTER TABLE {HOURLY} ATTACH PARTITION {_ident(part)}"
                    f" FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}');"
                    f"ALTER TABLE {_ident(part)} DROP CONSTRAINT {_ident(copy + '_bound')};"
                )
                for name in await conn.fetch(
                    "SELECT indexrelid::regclass::text AS name FROM pg_index"
                    " WHERE indrelid = $1::regclass",
                    _ident(part),
                ):
                    old = str(name["name"]).strip('"')
                    if old.startswith(copy):
                        await conn.execute(
                            f"ALTER INDEX {_ident(old)} RENAME TO"
                            f" {_ident(part + old.removeprefix(copy))}"
                        )
                await conn.execute(
                    "DELETE FROM unified_hourly_writes WHERE lo = $1 AND hi = $2", lo, hi
                )
                await conn.execute(_RECORD, part, lo, hi, *sizes)
                return locked
        except asyncpg.LockNotAvailableError:
            if attempt == attempts - 1:
                raise _Busy from None
            await asyncio.sleep(LOCK_PAUSE_SECONDS)
    raise AssertionError("unreachable")


async def compact_partition(
    conn: Connection, part: str, lo: datetime, hi: datetime, attempts: int = LOCK_ATTEMPTS
) -> CompactedPartition | None:
    """Compact one partition (see the module's docstring); None when it is empty. Raises
    `_Busy` when it stays busy."""
    if not await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {_ident(part)})"):  # noqa: S608
        return None
    await _watch(conn, part, lo, hi, attempts)
    copy = part + "_compact"
    try:
        for copies in range(1, BUILD_ATTEMPTS + 1):
            snapshot, rows, before, after = await _build(conn, part, copy, lo, hi)
            sizes = (rows, before, after)
            locked = await _swap(conn, part, copy, lo, hi, snapshot, sizes, attempts)
            if locked is None:
                log.info("compact_partition_written_meanwhile", partition=part, copies=copies)
                await conn.execute(f"DROP TABLE {_ident(copy)}")
                continue
            lock_ms = (time.perf_counter() - locked) * 1000
            return CompactedPartition(part, lo, hi, rows, before, after, copies, lock_ms)
    except Exception:
        await conn.execute(f"DROP TABLE IF EXISTS {_ident(copy)}")
        raise
    raise _Busy


async def compact(pool: Pool, now: datetime, *, attempts: int = LOCK_ATTEMPTS) -> CompactReport:
    """Compact every closed partition of `unified_hourly` (see `closed_before`) not compacted
    since it was last written; a partition that stays busy is left for the next run."""
    report = CompactReport(cutoff=closed_before(now))
    async with pool.acquire() as conn:
        for part, lo, hi in await _candidates(conn, report.cutoff):
            try:
                done = await compact_partition(conn, part, lo, hi, attempts)
            except _Busy:
                log.warning("compact_partition_busy", partition=part)
                report.busy.append(part)
                continue
            if done is None:
                continue
            log.info(
                "compact_partition",
                partition=part,
                rows=done.rows,
                bytes_before=done.bytes_before,
                bytes_after=done.bytes_after,
                lock_ms=round(done.lock_ms, 1),
            )
            report.compacted.append(done)
    return report
