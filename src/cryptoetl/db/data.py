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
_FLOATS = frozenset({"price_usd", "market_cap", "volume_24h"})
_TIMES = frozenset({"ingested_at", "observed_at"})
_TEXTS = frozenset({"coin_id", "name", "symbol", "source"})

# One way to write a time and a number in every format (JSON pages, NDJSON, CSV), rendered by
# PostgreSQL alone so the formats cannot drift apart: UTC with `Z` and always six fractional
# digits (`2017-09-24T00:00:00.000000Z`), and a float always with a point or an exponent
# (`62954300000.0`, `1e+16`), so pandas and polars read a float column and a time-zone-aware
# datetime column with their defaults.
TIME_TEXT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


def time_text(column: str) -> str:
    """SQL: `column` (timestamptz) as the API's one time format; NULL stays NULL."""
    return f"to_char({column} AT TIME ZONE 'UTC', '{TIME_TEXT}')"


def float_text(column: str) -> str:
    """SQL: `column` (float8) as text that always reads back as a float; NULL stays NULL."""
    # PostgreSQL writes an integral float below 1e15 without a point (`62954300000`) and
    # larger ones with an exponent (`1e+15`); a numeric test is cheaper than a regex on text
    text = f"{column}::text"
    whole = f"{column} = trunc({column}) AND abs({column}) < 1e15"
    return f"(CASE WHEN {whole} THEN {text} || '.0' ELSE {text} END)"


def symbol_text(prefix: str = "") -> str:
    """SQL: the row's symbol, else (a source that gives none, such as a CSV file without a
    symbol column) the symbol of the asset the asset mapping ties its coin to."""
    return (
        f"coalesce({prefix}symbol, (SELECT a.symbol FROM asset_mappings AS m"
        f" JOIN assets AS a ON a.asset_id = m.asset_id"
        f" WHERE m.source = {prefix}source AND m.coin_id = {prefix}coin_id))"
    )


def _cell_text(column: str, prefix: str) -> str:
    if column == "symbol":
        return symbol_text(prefix)
    if column in _FLOATS:
        return float_text(prefix + column)
    if column in _TIMES:
        return time_text(prefix + column)
    return f"{prefix}{column}::text"


def csv_columns(prefix: str = "") -> str:
    """SQL: the columns as the text written in a CSV cell (NULL for an empty cell)."""
    return ", ".join(f"{_cell_text(c, prefix)} AS {c}" for c in COLUMNS)


def row_json(prefix: str = "", *, empty_text: bool = False) -> str:
    """SQL: one row as a JSON object text, with the same times and numbers as `csv_columns`;
    `empty_text`: an unknown name or symbol is `""` (as in CSV) rather than null, so a reader
    that infers types from the first rows (polars) sees a text column."""
    null_text = "'\"\"'" if empty_text else "'null'"
    parts = []
    for n, column in enumerate(COLUMNS):
        key = ("{" if n == 0 else ",") + f'"{column}":'
        if column == "symbol":
            value = f"coalesce(to_json({symbol_text(prefix)})::text, {null_text})"
        elif column in _TEXTS:
            value = f"coalesce(to_json({prefix}{column})::text, {null_text})"
        elif column in _TIMES:
            value = f"""coalesce('"' || {time_text(prefix + column)} || '"', 'null')"""
        else:
            value = f"coalesce({_cell_text(column, prefix)}, 'null')"
        parts.append(f"'{key}' || {value}")
    return " || ".join(parts) + " || '}'"


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


def _base(filters: DataFilters, args: _Args) -> str:
    """The table, or with `symbol` the rows of that symbol: those that carry it, and those
    without a symbol of their own whose coin the asset mapping ties to an asset of that symbol
    (a CSV file with no symbol column); each half is an index scan."""
    if filters.symbol is None:
        return "unified_crypto_data"
    symbol = args.add(filters.symbol)
    return f"""(
        SELECT * FROM unified_crypto_data WHERE lower(symbol) = lower({symbol})
        UNION ALL
        SELECT d.* FROM asset_mappings AS m
          JOIN assets AS a ON a.asset_id = m.asset_id
          JOIN unified_crypto_data AS d ON d.source = m.source AND d.coin_id = m.coin_id
         WHERE lower(a.symbol) = lower({symbol}) AND d.symbol IS NULL
    )"""


def _conditions(filters: DataFilters, args: _Args) -> list[str]:
    """The filters but `symbol` (`_base` applies it)."""
    where = []
    if filters.source is not None:
        where.append(f"source = {args.add(filters.source)}")
    if filters.coin_id is not None:
        where.append(f"coin_id = {args.add(filters.coin_id)}")
    if filters.since is not None:
        where.append(f"observed_at >= {args.add(filters.since)}")
    if filters.until is not None:
        where.append(f"observed_at < {args.add(filters.until)}")
    return where


def _relation(filters: DataFilters, args: _Args) -> tuple[str, list[str]]:
    """The rows to page through, and the conditions still to apply to them."""
    if not filters.latest:
        base = _base(filters, args)
        return base, _conditions(filters, args)
    # latest: the newest observation of each (source, coin) among the rows the filters keep.
    if filters.coin_id is not None or filters.symbol is not None:
        # few rows match: take the newest of each pair among them
        base = _base(filters, args)
        where = " AND ".join(_conditions(filters, args)) or "true"
        return (
            f"(SELECT DISTINCT ON (source, coin_id) {_SELECT} FROM {base} AS b"
            f" WHERE {where} ORDER BY source, coin_id, observed_at DESC)"
        ), []
    return _latest_walk(filters, args), []


def _latest_walk(filters: DataFilters, args: _Args) -> str:
    """Newest row per (source, coin): the pairs from `unified_pairs` (kept by triggers with
    each pair's newest time), and for each one probe of the unique key at that time (runtime
    pruning to one partition); within a `since`/`until` window, the pair's newest row in the
    window. A pair whose recorded time finds no row (its partition was dropped) falls back to
    its newest row by time; a pair with no row left has no time and is skipped."""
    where = "p.last_observed_at IS NOT NULL"
    if filters.source is not None:
        where += f" AND p.source = {args.add(filters.source)}"
    window = ""
    if filters.since is not None:
        window += f" AND u.observed_at >= {args.add(filters.since)}"
    if filters.until is not None:
        window += f" AND u.observed_at < {args.add(filters.until)}"
    pair = "u.source = p.source AND u.coin_id = p.coin_id"
    newest = (
        f"SELECT {_SELECT} FROM unified_crypto_data AS u WHERE {pair}{window}"
        " ORDER BY u.observed_at DESC LIMIT 1"
    )
    if not window:
        exact = f"SELECT {_SELECT} FROM unified_crypto_data AS u WHERE {pair}"
        exact += " AND u.observed_at = p.last_observed_at"
        newest = f"SELECT * FROM (({exact}) UNION ALL ({newest})) AS n LIMIT 1"
    return f"""(
        SELECT l.* FROM unified_pairs AS p CROSS JOIN LATERAL ({newest}) AS l WHERE {where}
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
    whether more follow) and read back sorted, which costs nothing for 1,001 rows.

    The page size is written as literal numbers (validated ints), so a page without filters or
    cursor (page 1 of `/data`, the most common request) is a statement without parameters:
    PostgreSQL plans it once per connection and reuses the plan. With parameters it planned
    each of a connection's first five requests again, and planning over the partitions grows
    with their size (it asks each partition's and index's size from the files): measured at
    30 million rows, 5.5-6 ms a request instead of 3.7 ms."""
    args = _Args()
    select, count_sql = _select(query, args, _SELECT, paged=True)
    size = f"{int(query.page_size):d}"
    last = f"{int(query.page_size) - 1:d}"
    count = f"({count_sql})" if with_count else "NULL::bigint"
    order = order_by(query.sort)
    sql = f"""
        WITH page AS ({select})
        SELECT
            (SELECT '[' || coalesce(string_agg({row_json("p.")}, ','
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
    """Every matching row in order: one JSON object text per row when `as_json`, else the
    columns as CSV cell texts (`csv_columns`)."""
    args = _Args()
    sql, _ = _select(query, args, _SELECT, paged=False)
    if limited:
        # literal numbers (validated ints), as in the page query: see `_select`
        sql += f" LIMIT {int(query.page_size):d} OFFSET {int(query.offset):d}"
    columns = row_json("u.", empty_text=True) if as_json else csv_columns("u.")
    return f"SELECT {columns} FROM ({sql}) AS u ORDER BY {order_by(query.sort, 'u.')}", args.values


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
