"""GET /api/v1/health: does the database answer, and is every enabled source fresh?"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from cryptoetl.api.deps import PoolDep, SettingsDep
from cryptoetl.api.errors import DATABASE_RETRY_AFTER
from cryptoetl.api.etl import EtlControl
from cryptoetl.api.freshness import STALE_INTERVALS, source_problems
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.schemas.common import EtlLastRun, HealthResponse, SchedulerState
from cryptoetl.db import lease as lease_queries
from cryptoetl.db import runs as run_queries
from cryptoetl.db import source_status
from cryptoetl.db.pool import DATABASE_UNAVAILABLE, AcceptsConnections, ping

router = APIRouter(tags=["health"])


def _scheduler(etl: EtlControl | None, lease: lease_queries.LeaseRow | None) -> SchedulerState:
    """The lease as the database says; this replica's own belief when the database is down."""
    replica = etl.replica if etl is not None else None
    if lease is None:
        is_leader = etl.is_leader if etl is not None else False
        return SchedulerState(
            leader=replica if is_leader else None,
            this_replica=replica,
            is_leader=is_leader,
            fencing_token=None,
            lease_expires_at=None,
        )
    leader = lease.leader
    return SchedulerState(
        leader=leader,
        this_replica=replica,
        is_leader=replica is not None and leader == replica,
        fencing_token=lease.fencing_token if lease.holder is not None else None,
        lease_expires_at=lease.expires_at if leader is not None else None,
    )


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
        "the database does not answer or refuses new connections (it is shutting down), with "
        "`Retry-After`. `scheduler` says which replica holds the leader lease "
        "(runs scheduled ETL) and whether it is this one."
    ),
    responses={503: {"model": HealthResponse, "description": "The database is unreachable."}},
)
async def health(request: Request, pool: PoolDep, settings: SettingsDep) -> JsonResponse:
    now = datetime.now(UTC)
    connected = await ping(pool)
    accepts: AcceptsConnections | None = request.app.state.accepts_connections
    if connected and accepts is not None:  # a server shutting down keeps its old sessions
        connected = await accepts()
    last_run: EtlLastRun | None = None
    lease: lease_queries.LeaseRow | None = None
    problems: list[str] = []
    if connected:
        try:
            async with pool.acquire() as conn:
                row = await run_queries.latest(conn)
                overview = await source_status.source_overview(conn, settings.enabled_sources)
                lease = await lease_queries.read(conn)
        except DATABASE_UNAVAILABLE:
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
        scheduler=_scheduler(request.app.state.etl, lease),
    )
    if connected:
        return JsonResponse(body.model_dump(mode="json"))
    headers = {"Retry-After": DATABASE_RETRY_AFTER}
    return JsonResponse(body.model_dump(mode="json"), status_code=503, headers=headers)
