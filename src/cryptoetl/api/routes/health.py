"""GET /api/v1/health: does the database answer, and is every enabled source fresh?"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from cryptoetl.api.deps import PoolDep, SettingsDep
from cryptoetl.api.errors import DATABASE_DOWN
from cryptoetl.api.freshness import STALE_INTERVALS, source_problems
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.schemas import EtlLastRun, HealthResponse
from cryptoetl.db import run_history as run_queries
from cryptoetl.db import status as status_queries

router = APIRouter(tags=["health"])


@router.get(
    "/api/v1/health",
    response_model=HealthResponse,
    summary="Is the service healthy?",
    description=(
        "200 `healthy` when the database answers and every enabled source is fine. "
        "200 `degraded`, with the `reason`, when a source's last finished run failed (or was "
        f"partial), or its data was last loaded more than {STALE_INTERVALS} ETL intervals ago "
        f"(a source that never loaded data counts once the service has been up for "
        f"{STALE_INTERVALS} intervals). 503 `unhealthy` with `database_connected: false` when "
        "the database does not answer."
    ),
    responses={503: {"model": HealthResponse, "description": "The database is unreachable."}},
)
async def health(request: Request, pool: PoolDep, settings: SettingsDep) -> JsonResponse:
    now = datetime.now(UTC)
    connected = await status_queries.ping(pool)
    last_run: EtlLastRun | None = None
    problems: list[str] = []
    if connected:
        try:
            async with pool.acquire() as conn:
                row = await status_queries.latest_run(conn)
                overview = await run_queries.source_overview(conn, settings.enabled_sources)
        except DATABASE_DOWN:
            connected = False
        else:
            if row is not None:
                last_run = EtlLastRun(
                    source=row["source"],
                    timestamp=row["started_at"],
                    status=row["status"],
                    records_processed=row["fetched"],
                )
            problems = source_problems(
                overview,
                interval_seconds=settings.etl_interval_seconds,
                now=now,
                started_at=request.app.state.started_at,
            )
    if not connected:
        status, reason = "unhealthy", "the database does not answer"
    elif problems:
        status, reason = "degraded", "; ".join(problems)
    else:
        status, reason = "healthy", None
    body = HealthResponse(
        status=status,
        database_connected=connected,
        etl_last_run=last_run,
        timestamp=now,
        reason=reason,
    )
    return JsonResponse(body.model_dump(mode="json"), status_code=200 if connected else 503)
