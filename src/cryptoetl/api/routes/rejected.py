"""GET /api/v1/rejected: the records validation refused, by run and source, keyset-paged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from cryptoetl.api.deps import ReadPoolDep
from cryptoetl.api.errors import request_id_of
from cryptoetl.api.middleware import latency_ms
from cryptoetl.api.params import (
    RejectedCursorParam,
    RunIdParam,
    SourceParam,
    parse_rejected_cursor,
    rejected_cursor,
)
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.schemas.common import INVALID, UNAVAILABLE
from cryptoetl.api.schemas.runs import RejectedEntry, RejectedList
from cryptoetl.db import rejected as rejected_queries
from cryptoetl.db.rejected import COUNT_CAP, RejectedFilter

router = APIRouter(tags=["etl"])

MAX_REJECTED_PAGE_SIZE = 500
DEFAULT_REJECTED_PAGE_SIZE = 50


@router.get(
    "/api/v1/rejected",
    response_model=RejectedList,
    summary="Rejected records",
    description=(
        "Records that failed validation, each with its source, where it came from "
        "(`locator`, `file`, `line_no`), the raw text as the source sent it, and the reason. "
        "Newest run first (the run that last met the record); within a run, in the order they "
        "were stored (a CSV file's line order). Filter by `source` and `run_id`; page with "
        f"`next_cursor`. `total` is exact up to {COUNT_CAP:,}, null above."
    ),
    responses={**INVALID, **UNAVAILABLE},
)
async def list_rejected(
    request: Request,
    pool: ReadPoolDep,
    source: SourceParam = None,
    run_id: RunIdParam = None,
    cursor: RejectedCursorParam = None,
    page_size: Annotated[
        int, Query(ge=1, le=MAX_REJECTED_PAGE_SIZE, description="Records per page.")
    ] = DEFAULT_REJECTED_PAGE_SIZE,
) -> JsonResponse:
    after = parse_rejected_cursor(cursor)
    filters = RejectedFilter(source=source, run_id=run_id)
    async with pool.acquire() as conn:
        page = await rejected_queries.list_rejected(conn, filters, after=after, limit=page_size)
    body = RejectedList(
        rejected=[RejectedEntry.model_validate(dict(row)) for row in page.rows],
        total=page.total,
        page_size=page_size,
        next_cursor=rejected_cursor(page.next_key) if page.next_key else None,
        request_id=request_id_of(request),
        api_latency_ms=latency_ms(request),
    )
    return JsonResponse(body.model_dump(mode="json"))
