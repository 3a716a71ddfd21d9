"""GET /api/v1/data: the history, filtered, sorted, paged by number or by cursor, or exported.

Where the time goes (measured in docs/benchmarks.md, "API") decides the shape of this module:
no `count(*)` per request (the exact total comes from `source_stats`, or from a count cached per
data version), no per-row work in Python (PostgreSQL renders the page as one JSON text, spliced
into the body as bytes), and a response that cannot have changed since the last load is served
from a cache keyed by the data version, with an ETag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from cryptoetl.api.cache import DataCaches
from cryptoetl.api.conditional import (
    PageBody,
    etag_for,
    matches,
    not_modified,
    page_prefix,
    page_response,
)
from cryptoetl.api.params import DataParams, invalid, openapi_parameters
from cryptoetl.api.schemas.common import INVALID, UNAVAILABLE, DataPage
from cryptoetl.api.streaming import RowStream, negotiate
from cryptoetl.db.data import COLUMNS, fetch_page, stream_statement
from cryptoetl.db.data_query import (
    DEFAULT_PAGE_SIZE,
    DataFilters,
    DataQuery,
    QueryError,
    build_query,
)
from cryptoetl.db.replica import ReadPool
from cryptoetl.db.versions import Versions, VersionWatcher, fetch_versions

router = APIRouter(tags=["data"])

VersionKey = tuple[tuple[str, int], ...]

DESCRIPTION = """
The unified history: one row per (source, coin, observed_at).

**Paging.** `page` and `page_size` work as in the seed; every response also carries
`next_cursor`: pass it as `cursor` (instead of `page`) to get the next page by keyset, which
costs the same at page 10,000 as at page 1. `page` is answered with OFFSET, so deep pages by
number get slower; prefer the cursor. The cursor remembers the sort and the filters: repeat the
same filters with it.

**Formats.** `format=csv` or `format=ndjson` (or `Accept: text/csv` /
`Accept: application/x-ndjson`, or the paths `/api/v1/data.csv` and `/api/v1/data.ndjson`,
which describe both formats) streams every matching row (from `cursor` if given) instead of
one page, as a download (`Content-Disposition: attachment`); give `page` or `page_size` to
export only that page.

**Times and numbers** are written one way in JSON, NDJSON and CSV alike: UTC with `Z` and six
fractional digits (`2017-09-24T00:00:00.000000Z`), and prices, market caps and volumes always
as floats (`62954300000.0`). `symbol` is the source's own, else (a CSV file with no symbol
column) the symbol of the asset the coin is mapped to; the `symbol` filter matches the same.

**Caching.** Responses carry a weak `ETag` that changes whenever the data does; send it back in
`If-None-Match` to get `304 Not Modified`.
"""


CSV_COLUMNS = ", ".join(f"`{c}`" for c in COLUMNS)
CSV_DESCRIPTION = f"""
The rows of `GET /api/v1/data` (same filters and sort; `page`/`page_size` export only that
page) as a CSV file (RFC 4180, UTF-8, `\\n` line ends) with `Content-Disposition: attachment`.

One header line, then one line per row, columns in this order: {CSV_COLUMNS}. `id` is an
integer; `price_usd`, `market_cap` and `volume_24h` are floats written with a point or an
exponent; `ingested_at` and `observed_at` are UTC times with `Z` and six fractional digits; an
empty cell is an unknown value (a missing market cap, volume, name or symbol). Text cells are
quoted only when they hold a comma, a quote or a line break. pandas reads it as it is:
`pd.read_csv(url, parse_dates=["observed_at", "ingested_at"])`.
"""
CSV_EXAMPLE = (
    ",".join(COLUMNS) + "\n"
    "1,bitcoin,Bitcoin,BTC,3682.84,62954300000.0,768015000.0,csv,"
    "2026-12-02T15:56:24.143000Z,2017-09-24T00:00:00.000000Z\n"
)
NDJSON_DESCRIPTION = """
The rows of `GET /api/v1/data` (same filters and sort) as newline-delimited JSON, one object
per line with the fields of the JSON page's `data` items, with `Content-Disposition:
attachment`. Times and numbers as in the CSV; an unknown name or symbol is `""` (as in CSV),
so a reader that infers column types from the first lines (`polars.read_ndjson`) gets text.
"""
NDJSON_EXAMPLE = (
    '{"id":1,"coin_id":"bitcoin","name":"Bitcoin","symbol":"BTC","price_usd":3682.84,'
    '"market_cap":62954300000.0,"volume_24h":768015000.0,"source":"csv",'
    '"ingested_at":"2026-12-02T15:56:24.143000Z","observed_at":"2017-09-24T00:00:00.000000Z"}\n'
)


def _version_key(versions: Versions, source: str | None) -> VersionKey:
    if source is None:
        return tuple((v.source, v.data_version) for v in versions)
    return tuple((v.source, v.data_version) for v in versions if v.source == source) or (
        (source, 0),
    )


def _source_total(versions: Versions, source: str | None) -> int:
    return sum(v.row_count for v in versions if source is None or v.source == source)


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A query string, validated once and remembered (dashboards repeat theirs)."""

    query: DataQuery
    key: tuple[Any, ...]
    filters_key: tuple[Any, ...]
    format: str | None
    limited: bool


def _parse(request: Request, caches: DataCaches) -> ParsedQuery:
    raw: bytes = request.scope.get("query_string", b"")
    known: ParsedQuery | None = caches.queries.get(raw)
    if known is not None:
        return known
    params = DataParams.parse(request.query_params)
    filters = DataFilters(
        params.source, params.coin_id, params.symbol, params.since, params.until, params.latest
    )
    try:
        query = build_query(
            filters=filters,
            sort=params.sort,
            page=params.page,
            page_size=params.page_size or DEFAULT_PAGE_SIZE,
            cursor=params.cursor,
        )
    except QueryError as exc:
        raise invalid(exc) from None
    limited = params.page is not None or params.page_size is not None
    parsed = ParsedQuery(query, query.key(), filters.key(), params.format, limited)
    caches.queries.put(raw, parsed)
    return parsed


async def _page(
    request: Request, pool: ReadPool, caches: DataCaches, parsed: ParsedQuery
) -> Response:
    watcher: VersionWatcher = request.app.state.versions
    query, filters = parsed.query, parsed.query.filters
    if_none_match = request.headers.get("if-none-match")
    total: int | None = None
    with_count = not filters.by_source_only
    # 1. What does the database hold now? The watcher knows without a query, unless a change
    # was just announced (or it is not connected): then ask, when the answer is any use. The
    # watcher listens on the primary; a read replica may not have replayed what it announced,
    # so reads on a replica ask the replica itself: cached pages are keyed on what it holds.
    versions = None if pool.on_replica else watcher.current()
    if versions is None and (caches.bodies.enabled or if_none_match or with_count):
        async with pool.acquire() as conn:
            versions = await fetch_versions(conn)
    # 2. Answer from what is known for those versions: 304, a cached body, a cached count.
    if versions is not None:
        vkey = _version_key(versions, filters.source)
        cached = caches.bodies.get((vkey, parsed.key))
        etag = cached.etag if cached is not None else etag_for(vkey, parsed.key)
        if matches(if_none_match, etag):
            return not_modified(etag)
        if cached is not None:
            return page_response(request, cached)
        if filters.by_source_only:
            total = _source_total(versions, filters.source)
        else:
            total = caches.counts.get((vkey, parsed.filters_key))
            with_count = total is None
        if total is not None and query.after is None and query.offset >= total:
            # past the end: nothing to read
            body = PageBody(page_prefix("[]", total, query.page, query.page_size, None), etag)
            caches.bodies.put((vkey, parsed.key), body)
            return page_response(request, body)
    # 3. Read the page (and the count, when unknown) in one statement, one snapshot.
    async with pool.acquire() as conn:
        page = await fetch_page(conn, query, with_count=with_count)
    vkey = _version_key(page.versions, filters.source)
    if filters.by_source_only:
        total = _source_total(page.versions, filters.source)
    elif page.count is not None:
        total = page.count
        caches.counts.put((vkey, parsed.filters_key), total)
    if total is None:  # pragma: no cover - with_count was set whenever the count was unknown
        raise RuntimeError("the page statement returned no count")
    next_cursor = None
    if page.has_more and page.last_id is not None:
        next_cursor = query.next_cursor(page.last_value, page.last_id)
    body = PageBody(
        page_prefix(page.data_json, total, query.page, query.page_size, next_cursor),
        etag_for(vkey, parsed.key),
    )
    caches.bodies.put((vkey, parsed.key), body)
    if matches(if_none_match, body.etag):
        return not_modified(body.etag)
    return page_response(request, body)


@router.get(
    "/api/v1/data",
    summary="Market data: filter, sort, page, export",
    description=DESCRIPTION,
    response_model=DataPage,
    responses={
        200: {
            "description": "A page as JSON, or every matching row as CSV or NDJSON.",
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE},
                "application/x-ndjson": {"schema": {"type": "string"}, "example": NDJSON_EXAMPLE},
            },
        },
        304: {"description": "Not modified since the ETag sent in If-None-Match."},
        **INVALID,
        **UNAVAILABLE,
    },
    openapi_extra={"parameters": openapi_parameters(DataParams)},
)
async def get_data(request: Request) -> Response:
    caches: DataCaches = request.app.state.caches
    parsed = _parse(request, caches)
    pool: ReadPool = request.app.state.reads
    fmt = negotiate(parsed.format, request.headers.get("accept"))
    if fmt == "json":
        return await _page(request, pool, caches, parsed)
    return _export(request, parsed, fmt)


def _export(request: Request, parsed: ParsedQuery, fmt: str) -> Response:
    sql, args = stream_statement(parsed.query, as_json=fmt == "ndjson", limited=parsed.limited)
    return RowStream(request.app.state.pool, sql, args, fmt, request.app.state.export_slots)


EXPORT_PARAMETERS = [p for p in openapi_parameters(DataParams) if p["name"] != "format"]


@router.get(
    "/api/v1/data.csv",
    summary="Market data as a CSV file",
    description=CSV_DESCRIPTION,
    response_class=Response,
    responses={
        200: {
            "description": "Every matching row (or the page asked for), with a header line.",
            "content": {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE}},
        },
        **INVALID,
        **UNAVAILABLE,
    },
    openapi_extra={"parameters": EXPORT_PARAMETERS},
)
async def get_data_csv(request: Request) -> Response:
    return _export(request, _parse(request, request.app.state.caches), "csv")


@router.get(
    "/api/v1/data.ndjson",
    summary="Market data as NDJSON",
    description=NDJSON_DESCRIPTION,
    response_class=Response,
    responses={
        200: {
            "description": "Every matching row (or the page asked for), one JSON object a line.",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}, "example": NDJSON_EXAMPLE}
            },
        },
        **INVALID,
        **UNAVAILABLE,
    },
    openapi_extra={"parameters": EXPORT_PARAMETERS},
)
async def get_data_ndjson(request: Request) -> Response:
    return _export(request, _parse(request, request.app.state.caches), "ndjson")
