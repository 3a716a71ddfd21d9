"""GET /api/v1/health: the database answers, and what ran last."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from cryptoetl.api.deps import PoolDep
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.schemas import EtlLastRun, HealthResponse
from cryptoetl.db import status as status_queries

router = APIRouter(tags=["health"])


@router.get(
    "/api/v1/health",
    response_model=HealthResponse,
    summary="Is the service healthy?",
    description=(
        "200 `healthy` when the database answers; 503 `unhealthy` with "
        "`database_connected: false` when it does not."
    ),
    responses={503: {"model": HealthResponse, "description": "The database is unreachable."}},
)
async def health(pool: PoolDep) -> JsonResponse:
    connected = await status_queries.ping(pool)
    last_run: EtlLastRun | None = None
    if connected:
        async with pool.acquire() as conn:
            row = await status_queries.latest_run(conn)
        if row is not None:
            last_run = EtlLastRun(
                source=row["source"],
                timestamp=row["started_at"],
                status=row["status"],
                records_processed=row["fetched"],
            )
    body = HealthResponse(
        status="healthy" if connected else "unhealthy",
        database_connected=connected,
        etl_last_run=last_run,
        timestamp=datetime.now(UTC),
    )
    return JsonResponse(body.model_dump(mode="json"), status_code=200 if connected else 503)
