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
from cryptoetl.db.data import fetch_page, stream_statement
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
`Accept: application/x-ndjson`) streams every matching row (from `cursor` if given) instead of
one page; give `page` or `page_size` to export only that page.

**Caching.** Responses carry a weak `ETag` that changes whenever the data does; send it back in
`If-None-Match` to get `304 Not Modified`.
"""


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
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
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
    sql, args = stream_statement(parsed.query, as_json=fmt == "ndjson", limited=parsed.limited)
    return RowStream(pool, sql, args, fmt, request.app.state.export_slots)
