"""Reading `unified_crypto_data` for the API: one page as JSON text, exact counts, streams.

The page is rendered by PostgreSQL (`row_to_json` joined into one text value), so Python never
builds a dict per row. One statement returns the page, the key of its last row (for the next
cursor), whether more rows follow, the row counts and data versions of `source_stats` (from the
same snapshot), and, when asked, the exact count of the matching rows.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from cryptoetl.db.data_query import DataFilters, DataQuery, SortKey, SortValue
from cryptoetl.db.pool import Connection
from cryptoetl.db.versions import SourceVersion, Versions

COLUMNS = (
    "id",
    "coin_id",
    "name",
    "symbol",
    "price_usd",
    "market_cap",
    "volume_24h",
    "source",
    "ingested_at",
    "observed_at",
)
_SELECT = ", ".join(COLUMNS)


@dataclass(frozen=True, slots=True)
class Page:
    data_json: str
    has_more: bool
    last_value: SortValue
    last_id: int | None
    count: int | None
    versions: Versions


class _Args:
    """Positional parameters, numbered as they are added."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _conditions(filters: DataFilters, args: _Args) -> list[str]:
    where = []
    if filters.source is not None:
        where.append(f"source = {args.add(filters.source)}")
    if filters.coin_id is not None:
        where.append(f"coin_id = {args.add(filters.coin_id)}")
    if filters.symbol is not None:
        where.append(f"lower(symbol) = lower({args.add(filters.symbol)})")
    if filters.since is not None:
        where.append(f"observed_at >= {args.add(filters.since)}")
    if filters.until is not None:
        where.append(f"observed_at < {args.add(filters.until)}")
    return where


def _relation(filters: DataFilters, args: _Args) -> tuple[str, list[str]]:
    """The rows to page through, and the conditions still to apply to them."""
    if not filters.latest:
        return "unified_crypto_data", _conditions(filters, args)
    # latest: the newest observation of each (source, coin) among the rows the filters keep.
    if filters.coin_id is not None or filters.symbol is not None:
        # few rows match: take the newest of each pair among them
        where = " AND ".join(_conditions(filters, args))
        return (
            f"(SELECT DISTINCT ON (source, coin_id) {_SELECT} FROM unified_crypto_data"
            f" WHERE {where} ORDER BY source, coin_id, observed_at DESC)"
        ), []
    return _latest_walk(filters, args), []


def _latest_walk(filters: DataFilters, args: _Args) -> str:
    """Newest row per (source, coin) by a loose index scan of the unique index: one probe to
    find each next pair and one for its newest observation, instead of reading every row."""
    first_pair = "true"
    next_pair = "(u.source, u.coin_id) > (p.source, p.coin_id)"
    if filters.source is not None:
        # equality plus a range on the second column: a range scan the planner keeps tight
        source = args.add(filters.source)
        first_pair = f"u.source = {source}"
        next_pair = f"u.source = {source} AND u.coin_id > p.coin_id"
    window = ""
    if filters.since is not None:
        window += f" AND u.observed_at >= {args.add(filters.since)}"
    if filters.until is not None:
        window += f" AND u.observed_at < {args.add(filters.until)}"
    return f"""(
        WITH RECURSIVE pairs AS (
            (SELECT u.source, u.coin_id FROM unified_crypto_data AS u
              WHERE {first_pair} ORDER BY u.source, u.coin_id LIMIT 1)
            UNION ALL
            SELECT n.source, n.coin_id FROM pairs AS p CROSS JOIN LATERAL (
                SELECT u.source, u.coin_id FROM unified_crypto_data AS u
                 WHERE {next_pair}
                 ORDER BY u.source, u.coin_id LIMIT 1
            ) AS n
        )
        SELECT l.* FROM pairs AS p CROSS JOIN LATERAL (
            SELECT {_SELECT} FROM unified_crypto_data AS u
             WHERE u.source = p.source AND u.coin_id = p.coin_id{window}
             ORDER BY u.observed_at DESC LIMIT 1
        ) AS l
    )"""


def order_by(sort: SortKey, prefix: str = "") -> str:
    direction = "DESC" if sort.descending else "ASC"
    tie = f"{prefix}id {direction}"
    if sort.column == "id":
        return tie
    nulls = " NULLS LAST" if sort.nullable else ""
    return f"{prefix}{sort.column} {direction}{nulls}, {tie}"


def _keyset(query: DataQuery, args: _Args) -> str | None:
    after = query.after
    if after is None:
        return None
    sort = query.sort
    op = "<" if sort.descending else ">"
    last_id = args.add(after.last_id)
    if sort.column == "id":
        return f"id {op} {last_id}"
    if after.value is None:  # only nullable columns: we are in the trailing nulls
        return f"({sort.column} IS NULL AND id {op} {last_id})"
    value = args.add(after.value)
    past = f"({sort.column}, id) {op} ({value}, {last_id})"
    return f"({past} OR {sort.column} IS NULL)" if sort.nullable else past


def _select(query: DataQuery, args: _Args, columns: str, *, paged: bool) -> tuple[str, str]:
    """`SELECT columns FROM ... WHERE ... ORDER BY ... [LIMIT/OFFSET]` and the count query."""
    relation, where = _relation(query.filters, args)
    count_where = f" WHERE {' AND '.join(where)}" if where else ""
    count_sql = f"SELECT count(*) FROM {relation} AS u{count_where}"
    keyset = _keyset(query, args)
    if keyset:
        where = [*where, keyset]
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT {columns} FROM {relation} AS u{clause} ORDER BY {order_by(query.sort)}"
    if paged:
        # literal numbers (validated ints): a prepared statement with a LIMIT parameter goes
        # generic after five runs, and a generic plan over the partitions cannot size the
        # per-partition index scans for a page (measured: a coin's page 2x slower)
        sql += f" LIMIT {int(query.page_size) + 1:d} OFFSET {int(query.offset):d}"
    return sql, count_sql


def page_statement(query: DataQuery, *, with_count: bool) -> tuple[str, list[Any]]:
    """The page statement: the page's rows are fetched once (one more than the page, to learn
    whether more follow) and read back sorted, which costs nothing for 1,001 rows."""
    args = _Args()
    select, count_sql = _select(query, args, _SELECT, paged=True)
    size = args.add(query.page_size)
    last = args.add(query.page_size - 1)
    count = f"({count_sql})" if with_count else "NULL::bigint"
    order = order_by(query.sort)
    sql = f"""
        WITH page AS ({select})
        SELECT
            (SELECT '[' || coalesce(string_agg(row_to_json(p)::text, ','
                                               ORDER BY {order_by(query.sort, "p.")}), '') || ']'
               FROM (SELECT * FROM page ORDER BY {order} LIMIT {size}) AS p) AS data,
            (SELECT count(*) FROM page) AS fetched,
            (SELECT {query.sort.column} FROM page ORDER BY {order} OFFSET {last} LIMIT 1)
                AS last_value,
            (SELECT id FROM page ORDER BY {order} OFFSET {last} LIMIT 1) AS last_id,
            {count} AS total,
            (SELECT coalesce(json_agg(json_build_array(source, row_count, data_version)), '[]')
               FROM source_stats) AS versions
    """
    return sql, args.values


def _versions(raw: Sequence[Sequence[Any]]) -> Versions:
    return tuple(sorted(SourceVersion(str(s), int(n), int(v)) for s, n, v in raw))


async def fetch_page(conn: Connection, query: DataQuery, *, with_count: bool) -> Page:
    """One page of `query` as a JSON array text, with what the response needs around it."""
    sql, args = page_statement(query, with_count=with_count)
    row = await conn.fetchrow(sql, *args)
    if row is None:  # pragma: no cover - a SELECT of scalar subqueries returns one row
        raise RuntimeError("the page statement returned no row")
    return Page(
        data_json=row["data"],
        has_more=row["fetched"] > query.page_size,
        last_value=row["last_value"],
        last_id=row["last_id"],
        count=row["total"],
        versions=_versions(row["versions"]),
    )


def stream_statement(query: DataQuery, *, as_json: bool, limited: bool) -> tuple[str, list[Any]]:
    """Every matching row in order: one `row_to_json` text per row when `as_json`."""
    args = _Args()
    sql, _ = _select(query, args, _SELECT, paged=False)
    if limited:
        sql += f" LIMIT {int(query.page_size):d} OFFSET {int(query.offset):d}"
    if as_json:
        sql = f"SELECT row_to_json(u)::text FROM ({sql}) AS u ORDER BY {order_by(query.sort, 'u.')}"
    return sql, args.values


async def stream_rows(
    conn: Connection, sql: str, args: Sequence[Any], chunk: int
) -> AsyncGenerator[list[asyncpg.Record], None]:
    """Rows of `sql` from a server-side cursor, `chunk` at a time. Needs a transaction."""
    cursor = await conn.cursor(sql, *args)
    while True:
        rows = await cursor.fetch(chunk)
        if rows:
            yield rows
        if len(rows) < chunk:
            return
