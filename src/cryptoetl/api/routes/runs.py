"""GET /api/v1/runs (recent runs, filtered, paged) and GET /api/v1/runs/{run_id}."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, HTTPException, Path, Query, Request

from cryptoetl.api.deps import PoolDep
from cryptoetl.api.errors import request_id_of
from cryptoetl.api.middleware import latency_ms
from cryptoetl.api.params import RunStatusParam, SourceParam
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.schemas.common import INVALID, NOT_FOUND, UNAVAILABLE
from cryptoetl.api.schemas.runs import (
    BackfillProgress,
    RejectedRecord,
    RejectedSummary,
    Run,
    RunDetail,
    RunsPage,
    duration,
)
from cryptoetl.db import backfill as backfill_queries
from cryptoetl.db import rejected as rejected_queries
from cryptoetl.db import runs as run_queries
from cryptoetl.db.data_query import MAX_ID

router = APIRouter(tags=["etl"])

MAX_RUNS_PAGE_SIZE = 500
REJECTED_SAMPLE = 20


def _run(row: asyncpg.Record, now: datetime) -> dict[str, Any]:
    values = dict(row)
    values["duration_seconds"] = duration(row["started_at"], row["finished_at"], now)
    return values


@router.get(
    "/api/v1/runs",
    response_model=RunsPage,
    summary="Recent ETL runs",
    description="One row per source per run, newest first; filter by source and status.",
    responses={**INVALID, **UNAVAILABLE},
)
async def list_runs(
    request: Request,
    pool: PoolDep,
    source: SourceParam = None,
    status: RunStatusParam = None,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_RUNS_PAGE_SIZE)] = 50,
) -> JsonResponse:
    async with pool.acquire() as conn:
        total, rows = await run_queries.list_page(
            conn, source=source, status=status, limit=page_size, offset=(page - 1) * page_size
        )
    now = datetime.now(UTC)
    body = RunsPage(
        runs=[Run.model_validate(_run(row, now)) for row in rows],
        total=total,
        page=page,
        page_size=page_size,
        request_id=request_id_of(request),
        api_latency_ms=latency_ms(request),
    )
    return JsonResponse(body.model_dump(mode="json"))


@router.get(
    "/api/v1/runs/{run_id}",
    response_model=RunDetail,
    summary="One ETL run, with its rejected records",
    description=(
        "The run, and the records rejected by validation whose latest sighting is this run "
        f"(how many, and the first {REJECTED_SAMPLE} with their reasons). `rejected` is the "
        "number the run itself counted."
    ),
    responses={**NOT_FOUND, **INVALID, **UNAVAILABLE},
)
async def get_run(
    request: Request,
    pool: PoolDep,
    run_id: Annotated[int, Path(ge=1, le=MAX_ID, description="The run's id.")],
) -> JsonResponse:
    async with pool.acquire() as conn:
        row = await run_queries.get(conn, run_id)
        if row is None:
            raise HTTPException(404, f"no run with id {run_id}")
        count, rejected = await rejected_queries.of_run(conn, run_id, REJECTED_SAMPLE)
        progress = (await backfill_queries.progress(conn, [run_id])).get(run_id)
    body = RunDetail.model_validate(
        {
            **_run(row, datetime.now(UTC)),
            "rejected_records": RejectedSummary(
                count=count,
                sample=[RejectedRecord.model_validate(dict(r)) for r in rejected],
            ),
            "backfill": BackfillProgress.from_row(progress) if progress is not None else None,
            "request_id": request_id_of(request),
            "api_latency_ms": latency_ms(request),
        }
    )
    return JsonResponse(body.model_dump(mode="json"))
