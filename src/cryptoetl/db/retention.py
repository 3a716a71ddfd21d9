"""Raw retention: raw partitions older than RAW_RETENTION_DAYS leave whole, never by DELETE.

A partition is retired when all of its time range is older than the cut-off (`hi <= now -
days`). Each retirement is recorded in `raw_retirements` first, then the partition is detached
with `DETACH PARTITION ... CONCURRENTLY` (the raw tables have no DEFAULT partition, so this is
allowed: it takes only a SHARE UPDATE EXCLUSIVE lock on the parent, so loads keep committing
while it waits for the queries that still see the partition), its rows, bytes and id range are
counted on the detached table, and it is dropped; the record is completed in the same
transaction as the drop. A retirement interrupted half way (a crash, a kill) is finished by the
next run: a pending detach is finalized, a detached table dropped.

The raw tables are `raw_http` (one row per record, written before migration 0017),
`raw_http_pages` (the HTTP sources' records as pages since 0017) and `raw_csv`. `raw_state`
tells the API whether a unified row's raw record is stored, was retired, or is missing (a raw
id that no retirement covers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptoetl.db import partitions
from cryptoetl.db.pool import Connection, Pool

RAW_TABLES = (partitions.RAW_HTTP, partitions.RAW_HTTP_PAGES, partitions.RAW_CSV)


@dataclass(frozen=True, slots=True)
class Retired:
    """What one retirement run did."""

    partitions: int
    rows: int
    bytes: int
    finished_earlier: int  # interrupted retirements completed now


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _complete(conn: Connection, retirement_id: int, table: str, name: str) -> tuple[int, int]:
    """Detach (or finish detaching) `name` from `table`, count it, drop it and complete the
    record `retirement_id`; (rows, bytes) it held."""
    pending = await conn.fetchval(
        "SELECT i.inhdetachpending FROM pg_inherits AS i"
        " WHERE i.inhrelid = to_regclass($1) AND i.inhparent = $2::regclass",
        _quoted(name),
        table,
    )
    if pending is True:
        await conn.execute(f"ALTER TABLE {table} DETACH PARTITION {_quoted(name)} FINALIZE")
    elif pending is False:
        await conn.execute(f"ALTER TABLE {table} DETACH PARTITION {_quoted(name)} CONCURRENTLY")
    async with conn.transaction():
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", _quoted(name))
        rows, size, min_id, max_id = 0, 0, None, None
        if exists:
            counted = await conn.fetchrow(
                f"SELECT count(*) AS n, min(id) AS lo, max(id) AS hi,"  # noqa: S608
                f" pg_total_relation_size($1::regclass) AS size FROM {_quoted(name)}",
                _quoted(name),
            )
            if counted is None:  # pragma: no cover - an aggregate always has one row
                raise RuntimeError(f"{name}: no count")
            rows, size = int(counted["n"]), int(counted["size"])
            min_id, max_id = counted["lo"], counted["hi"]
            await conn.execute(f"DROP TABLE {_quoted(name)}")
        await conn.execute(
            """
            UPDATE raw_retirements
            SET rows = $2, bytes = $3, min_id = coalesce($4, min_id),
                max_id = coalesce($5, max_id), retired_at = clock_timestamp()
            WHERE id = $1
            """,
            retirement_id,
            rows,
            size,
            min_id,
            max_id,
        )
    return rows, size


async def retire_raw(pool: Pool, days: int, now: datetime) -> Retired:
    """Retire every raw partition whose range ended `days` days before `now` or earlier
    (`days` 0: keep everything, but still finish interrupted retirements)."""
    async with pool.acquire() as conn:
        pending = await conn.fetch(
            "SELECT id, table_name, partition FROM raw_retirements WHERE retired_at IS NULL"
            " ORDER BY id"
        )
        for row in pending:
            await _complete(conn, row["id"], row["table_name"], row["partition"])
        count = rows = size = 0
        if days > 0:
            cutoff = now - timedelta(days=days)
            for table in RAW_TABLES:
                for part in await partitions.list_partitions(conn, table):
                    if part.hi > cutoff:
                        continue
                    retirement_id = await conn.fetchval(
                        "INSERT INTO raw_retirements (table_name, partition, lo, hi, rows, bytes)"
                        " VALUES ($1, $2, $3, $4, 0, 0) RETURNING id",
                        table,
                        part.name,
                        part.lo,
                        part.hi,
                    )
                    held, held_bytes = await _complete(conn, retirement_id, table, part.name)
                    count, rows, size = count + 1, rows + held, size + held_bytes
    return Retired(count, rows, size, len(pending))


async def raw_state(
    conn: Connection, tables: Sequence[str], raw_id: int | None
) -> tuple[str, str, datetime | None]:
    """Which of `tables` (raw tables sharing one id sequence, as raw_http and raw_http_pages
    do) holds raw record `raw_id`, and whether it is `stored` there, was `retired` (and when),
    or is `missing` (the last table named); `none` for a row that never had one."""
    if any(table not in RAW_TABLES for table in tables):
        raise ValueError(f"{tables} are not raw tables")
    if raw_id is None:
        return tables[-1], "none", None
    for table in tables:
        if await conn.fetchval(f"SELECT 1 FROM {table} WHERE id = $1 LIMIT 1", raw_id):  # noqa: S608
            return table, "stored", None
    retired = await conn.fetchrow(
        "SELECT table_name, retired_at FROM raw_retirements"
        " WHERE table_name = ANY($1::text[]) AND retired_at IS NOT NULL"
        " AND $2 BETWEEN min_id AND max_id ORDER BY retired_at LIMIT 1",
        list(tables),
        raw_id,
    )
    if retired is not None:
        return retired["table_name"], "retired", retired["retired_at"]
    return tables[-1], "missing", None
