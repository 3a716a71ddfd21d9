"""The database's size per table (a partitioned table counts all of its partitions), for
`/metrics`, `/api/v1/stats` and `cryptoetl maintain`. Catalog reads only: no table scan."""

from __future__ import annotations

from dataclasses import dataclass

from cryptoetl.db.pool import Connection

# Every ordinary or partitioned table of the schema in use; a partition is summed into its
# parent. Sizes include indexes and TOAST (pg_total_relation_size); rows are the planner's
# estimate (reltuples, -1 before the first ANALYZE counts as 0).
_SIZES = """
SELECT coalesce(parent.relname, c.relname)::text AS name,
       sum(pg_total_relation_size(c.oid))::bigint AS bytes,
       sum(greatest(c.reltuples, 0))::bigint AS rows
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = current_schema()
LEFT JOIN pg_inherits AS i ON i.inhrelid = c.oid
LEFT JOIN pg_class AS parent ON parent.oid = i.inhparent
WHERE c.relkind IN ('r', 'p')
GROUP BY 1
ORDER BY 1
"""


@dataclass(frozen=True, slots=True)
class TableSize:
    name: str
    bytes: int
    rows: int  # estimated


async def table_sizes(conn: Connection) -> list[TableSize]:
    """Every table of the schema, by name, with its bytes on disk and estimated rows."""
    return [TableSize(r["name"], r["bytes"], r["rows"]) for r in await conn.fetch(_SIZES)]


async def database_bytes(conn: Connection) -> int:
    """The whole database's size on disk."""
    return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
