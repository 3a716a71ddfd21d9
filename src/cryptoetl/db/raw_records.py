"""One unified row's raw record, wherever it is kept (for GET /api/v1/data/{id}/lineage).

An HTTP source's raw id is the id of a `raw_http_pages` row (since migration 0017: the record
is the element of the page's `records` whose locator, `keys[i]` and `times[i]`, is the row's
coin id and observation time) or of a `raw_http` row (stored before 0017, one row per record);
both tables take their ids from one sequence, so the id alone says which. A raw record retired
with its partition is reported `retired` (`retention.raw_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptoetl.db import partitions, retention
from cryptoetl.db.pool import Connection

# The record of a page whose locator is ($2, $3): the first such element (a page holds each
# locator once).
_PAGED = """
SELECT p.fetched_at, p.records -> (x.i - 1)::integer AS payload, (x.i - 1)::integer AS position
FROM raw_http_pages AS p,
     unnest(p.keys, p.times) WITH ORDINALITY AS x(key, at, i)
WHERE p.id = $1 AND x.key = $2 AND x.at = $3
ORDER BY x.i
LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """Where a raw record is and, while it is stored, when it was fetched and what it was."""

    table: str
    status: str  # stored, retired, missing, none
    retired_at: datetime | None = None
    fetched_at: datetime | None = None
    payload: Any = None
    position: int | None = None  # its index in its page (raw_http_pages)


async def http_record(
    conn: Connection, raw_id: int | None, coin_id: str, observed_at: datetime
) -> RawRecord:
    """The raw record of an HTTP source's unified row (`coin_id` observed at `observed_at`)."""
    table, status, retired_at = await retention.raw_state(
        conn, (partitions.RAW_HTTP, partitions.RAW_HTTP_PAGES), raw_id
    )
    if status != "stored":
        return RawRecord(table, status, retired_at)
    if table == partitions.RAW_HTTP:
        return await _row(conn, table, raw_id)
    found = await conn.fetchrow(_PAGED, raw_id, coin_id, observed_at)
    if found is None:  # the page is there but holds no record of this locator
        return RawRecord(table, "missing")
    return RawRecord(
        table, "stored", None, found["fetched_at"], found["payload"], found["position"]
    )


async def table_record(conn: Connection, table: str, raw_id: int | None) -> RawRecord:
    """The raw record `raw_id` of a table of one row per record (`raw_http`, `raw_csv`)."""
    _, status, retired_at = await retention.raw_state(conn, (table,), raw_id)
    if status != "stored":
        return RawRecord(table, status, retired_at)
    return await _row(conn, table, raw_id)


async def _row(conn: Connection, table: str, raw_id: int | None) -> RawRecord:
    stored = await conn.fetchrow(
        f"SELECT fetched_at, payload FROM {table} WHERE id = $1 LIMIT 1",  # noqa: S608
        raw_id,
    )
    if stored is None:  # retired between the two reads
        return RawRecord(table, "missing")
    return RawRecord(table, "stored", None, stored["fetched_at"], stored["payload"])
