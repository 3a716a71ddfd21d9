"""Reading `rejected_records` for the API and the /rejected page: filtered, keyset-paged.

Order: the run that last met a record, newest first; within a run, in the order the records
were stored (for a CSV file, its line order). A page after `(run, id)` is two index range
scans (the rest of that run, then older runs) served by the indexes of migration 0007, so
page 1,000 costs what page 1 costs. Counts stop at `COUNT_CAP`: an exact count of a huge
table is not worth a slow page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from cryptoetl.db.pool import Connection

COUNT_CAP = 10_000
# A rejected record is served (API and page) with at most this many characters of its raw
# text, then a marker with the full length; `raw_length` is always the stored length. Done
# in SQL, so a 50 MB line stored before any cap never leaves the database whole.
SERVED_RAW_CHARS = 4096
COLUMNS = f"""
    id, source, first_run_id, last_run_id, locator, file, line_no,
    CASE WHEN length(raw) > {SERVED_RAW_CHARS}
         THEN left(raw, {SERVED_RAW_CHARS}) || ' [... truncated: ' || length(raw)
              || ' characters in all]'
         ELSE raw END AS raw,
    length(raw) AS raw_length, reason, seen_count, first_seen_at, last_seen_at
"""


@dataclass(frozen=True, slots=True)
class RejectedFilter:
    """Which rejected records: of one source, last met by one run, or all (None)."""

    source: str | None = None
    run_id: int | None = None


@dataclass(frozen=True, slots=True)
class RejectedKey:
    """The position of one record in the listing's order (the keyset cursor)."""

    run_id: int
    id: int


@dataclass(frozen=True, slots=True)
class RejectedPage:
    rows: list[asyncpg.Record]
    next_key: RejectedKey | None  # where the next page starts; None on the last page
    total: int | None  # every record matching the filters; None past `COUNT_CAP`


def _where(filters: RejectedFilter, args: list[object]) -> list[str]:
    where = []
    if filters.source is not None:
        args.append(filters.source)
        where.append(f"source = ${len(args)}")
    if filters.run_id is not None:
        args.append(filters.run_id)
        where.append(f"last_run_id = ${len(args)}")
    return where


def _and(conditions: list[str]) -> str:
    return " AND ".join(conditions) if conditions else "true"


async def list_rejected(
    conn: Connection, filters: RejectedFilter, *, after: RejectedKey | None, limit: int
) -> RejectedPage:
    """One page of at most `limit` records, after `after` (None: from the start), and how
    many records match in all (`count_rejected`)."""
    args: list[object] = []
    where = _where(filters, args)
    if after is None:
        args.append(limit + 1)
        sql = (
            f"SELECT {COLUMNS} FROM rejected_records WHERE {_and(where)}"
            f" ORDER BY last_run_id DESC, id LIMIT ${len(args)}"
        )
    else:
        args.extend((after.run_id, after.id, limit + 1))
        run, rid, n = f"${len(args) - 2}", f"${len(args) - 1}", f"${len(args)}"
        same_run = _and([*where, f"last_run_id = {run}", f"id > {rid}"])
        older = _and([*where, f"last_run_id < {run}"])
        sql = f"""
            SELECT * FROM (
                (SELECT {COLUMNS} FROM rejected_records WHERE {same_run} ORDER BY id LIMIT {n})
                UNION ALL
                (SELECT {COLUMNS} FROM rejected_records WHERE {older}
                 ORDER BY last_run_id DESC, id LIMIT {n})
            ) AS page
            ORDER BY last_run_id DESC, id LIMIT {n}
        """
    rows = await conn.fetch(sql, *args)
    total = await count_rejected(conn, filters)
    if len(rows) <= limit:
        return RejectedPage(rows, None, total)
    last = rows[limit - 1]
    return RejectedPage(rows[:limit], RejectedKey(last["last_run_id"], last["id"]), total)


async def count_rejected(conn: Connection, filters: RejectedFilter) -> int | None:
    """How many records match, exactly; None when more than `COUNT_CAP` do."""
    args: list[object] = []
    where = _where(filters, args)
    args.append(COUNT_CAP + 1)
    count: int = await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM rejected_records WHERE {_and(where)}"
        f" LIMIT ${len(args)}) AS capped",
        *args,
    )
    return None if count > COUNT_CAP else count


async def count_rejected_by_source(
    conn: Connection, sources: Sequence[str]
) -> tuple[int | None, dict[str, int | None]]:
    """`count_rejected` of all records, and of each of `sources`, in one statement."""
    rows = await conn.fetch(
        """
        SELECT NULL::text AS source,
               (SELECT count(*) FROM (SELECT 1 FROM rejected_records LIMIT $2) AS a) AS n
        UNION ALL
        SELECT s.source, (SELECT count(*) FROM (SELECT 1 FROM rejected_records r
                                                WHERE r.source = s.source LIMIT $2) AS c)
        FROM unnest($1::text[]) AS s (source)
        """,
        list(sources),
        COUNT_CAP + 1,
    )
    counts = {row["source"]: None if row["n"] > COUNT_CAP else row["n"] for row in rows}
    total = counts.pop(None)
    return total, counts


async def of_run(conn: Connection, run_id: int, limit: int) -> tuple[int, list[asyncpg.Record]]:
    """Rejected records last met by run `run_id`: how many, and the first `limit` of them."""
    count = await conn.fetchval(
        "SELECT count(*) FROM rejected_records WHERE last_run_id = $1", run_id
    )
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM rejected_records WHERE last_run_id = $1 ORDER BY id LIMIT $2",
        run_id,
        limit,
    )
    return int(count), rows
