"""GET /rejected: the records validation refused, grouped by run and source, keyset-paged.

The same query functions as `GET /api/v1/rejected` (`db.rejected`), and the run headings come
from `runs.get`, as `GET /api/v1/runs/{id}` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlencode

import asyncpg
from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse

from cryptoetl.api.deps import ReadPoolDep
from cryptoetl.api.params import (
    RejectedCursorParam,
    one_of,
    parse_rejected_cursor,
    rejected_cursor,
    validation_error,
)
from cryptoetl.db import rejected as rejected_queries
from cryptoetl.db import runs as run_queries
from cryptoetl.db.data_query import MAX_ID, MAX_PAGE
from cryptoetl.db.rejected import RejectedFilter
from cryptoetl.sources import REGISTRY
from cryptoetl.web.render import Pages
from cryptoetl.web.routing import DATABASE_WAIT, PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
FormText = Annotated[str | None, Query(max_length=40)]


@dataclass(slots=True)
class RunGroup:
    """Consecutive records of one run (and so one source), with the run's row."""

    run_id: int
    source: str
    run: asyncpg.Record | None
    records: list[asyncpg.Record] = field(default_factory=list)


def group_by_run(rows: list[asyncpg.Record], runs: dict[int, asyncpg.Record]) -> list[RunGroup]:
    groups: list[RunGroup] = []
    for row in rows:
        if not groups or groups[-1].run_id != row["last_run_id"]:
            run_id = row["last_run_id"]
            groups.append(RunGroup(run_id, row["source"], runs.get(run_id)))
        groups[-1].records.append(row)
    return groups


def _form_value(value: str | None) -> str | None:
    """A filter as the form sends it: an empty field means no filter."""
    value = (value or "").strip()
    return value or None


def _filters(source: str | None, run_id: str | None) -> RejectedFilter:
    """The form's filters, checked as the JSON API checks them (422 naming the bad one)."""
    problems = []
    if source is not None and source not in REGISTRY.names:
        problems.append((("query", "source"), one_of(REGISTRY.names)))
    number = None
    if run_id is not None:
        number = int(run_id) if run_id.isascii() and run_id.isdigit() else 0
        if not 1 <= number <= MAX_ID:
            problems.append((("query", "run_id"), "must be a run id (a whole number from 1)"))
    if problems:
        raise validation_error(*problems)
    return RejectedFilter(source=source, run_id=number)


def _link(**params: object) -> str:
    kept = {name: value for name, value in params.items() if value is not None}
    return f"/rejected?{urlencode(kept)}" if kept else "/rejected"


@router.get("/rejected", response_class=HTMLResponse)
async def rejected_page(
    request: Request,
    pool: ReadPoolDep,
    source: FormText = None,
    run_id: FormText = None,
    cursor: RejectedCursorParam = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    after = parse_rejected_cursor(cursor)
    filters = _filters(_form_value(source), _form_value(run_id))
    source, run_id_value = filters.source, filters.run_id
    async with pool.acquire(timeout=DATABASE_WAIT) as conn:
        listing = await rejected_queries.list_rejected(conn, filters, after=after, limit=PAGE_SIZE)
        runs = await run_queries.get_many(conn, (row["last_run_id"] for row in listing.rows))
    next_link = None
    if listing.next_key is not None:
        next_link = _link(
            source=source,
            run_id=run_id_value,
            cursor=rejected_cursor(listing.next_key),
            page=page + 1,
        )
    context = {
        "title": "Rejected records",
        "groups": group_by_run(listing.rows, runs),
        "total": listing.total,
        "cap": rejected_queries.COUNT_CAP,
        "source": source,
        "run_id": run_id_value,
        "sources": REGISTRY.names,
        "page": page,
        "first": (page - 1) * PAGE_SIZE + 1,
        "shown": len(listing.rows),
        "next_link": next_link,
        "first_link": _link(source=source, run_id=run_id_value) if after else None,
    }
    pages: Pages = request.app.state.pages
    return pages.render(request, "rejected.html", context)
