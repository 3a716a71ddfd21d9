"""The time partitions of the history and raw tables (migration 0011, docs/storage.md).

`ensure` makes sure every instant of a time range has a partition: it calls the database's
`ensure_partitions`, which creates the missing ones (weekly, monthly or yearly for the unified
history, monthly or yearly for its hourly rollups, daily or coarser for raw records and pages)
under an advisory lock. Call it outside
any other transaction: it commits on its own, so a batch that follows still commits with its
cursor in one transaction, and a partition created for a batch that then fails is simply there
for the retry.
`list_partitions` reads the partitions and their bounds from the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptoetl.db.pool import Connection
from cryptoetl.models import LocatorKind

UNIFIED = "unified_crypto_data"
HOURLY = "unified_hourly"  # the hourly rollups (migration 0021)
RAW_HTTP = "raw_http"  # one row per record: no longer written since migration 0017
RAW_HTTP_PAGES = "raw_http_pages"
RAW_CSV = "raw_csv"
PARTITIONED = (UNIFIED, HOURLY, RAW_HTTP, RAW_HTTP_PAGES, RAW_CSV)
WITH_DEFAULT = (UNIFIED, HOURLY)  # the tables with a DEFAULT partition


@dataclass(frozen=True, slots=True)
class Partition:
    """One range partition: rows with `lo <= key < hi`."""

    name: str
    lo: datetime
    hi: datetime


async def ensure(conn: Connection, table: str, lo: datetime, hi: datetime) -> int:
    """Create the partitions `table` lacks for [lo, hi] (both included); how many were made."""
    if table not in PARTITIONED:
        raise ValueError(f"{table} is not a partitioned table")
    created = await conn.fetchval("SELECT ensure_partitions($1::regclass, $2, $3)", table, lo, hi)
    return int(created or 0)


async def ensure_for(conn: Connection, table: str, times: Iterable[datetime | None]) -> int:
    """`ensure` for the span of `times` (None ignored); nothing to do without any time."""
    known = [t for t in times if t is not None]
    if not known:
        return 0
    return await ensure(conn, table, min(known), max(known))


async def list_partitions(conn: Connection, table: str) -> list[Partition]:
    """The range partitions of `table`, oldest first (the DEFAULT partition is not listed)."""
    rows = await conn.fetch("SELECT name, lo, hi FROM partition_bounds($1::regclass)", table)
    return [Partition(row["name"], row["lo"], row["hi"]) for row in rows]


async def default_rows(conn: Connection, table: str = UNIFIED) -> int:
    """How many rows sit in the DEFAULT partition of `table` (the unified history or its
    rollups; none in normal operation: only rows written outside the loader, for a time no
    partition covers, go there)."""
    if table not in WITH_DEFAULT:
        raise ValueError(f"{table} has no default partition")
    return int(await conn.fetchval(f"SELECT count(*) FROM {table}_default"))  # noqa: S608


async def ensure_for_batch(
    conn: Connection, kind: LocatorKind, observed: Iterable[datetime], fetched_at: datetime
) -> int:
    """The partitions one batch writes to: its observations' times in the unified history and
    their hours in the rollups, and its fetch time in `raw_http_pages` (HTTP sources) or
    `raw_csv` (file sources). One statement, so one round trip per batch (the advisory locks
    are always taken in this order: unified, rollups, raw)."""
    raw = RAW_HTTP_PAGES if kind is LocatorKind.OBSERVATION else RAW_CSV
    known = [t for t in observed if t is not None]
    if not known:
        return await ensure(conn, raw, fetched_at, fetched_at)
    created = await conn.fetchval(
        "SELECT ensure_partitions($1::regclass, $3, $4) + ensure_partitions($2::regclass, $3, $4)"
        " + ensure_partitions($5::regclass, $6, $6)",
        UNIFIED,
        HOURLY,
        min(known),
        max(known),
        raw,
        fetched_at,
    )
    return int(created or 0)
