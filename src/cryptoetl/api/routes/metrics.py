"""GET /metrics: Prometheus text format, with the ETL view read from the database now."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from starlette.responses import Response

from cryptoetl.api.deps import WritePoolDep
from cryptoetl.db import runs as run_queries
from cryptoetl.db import sizes
from cryptoetl.db.pool import DATABASE_UNAVAILABLE
from cryptoetl.db.versions import fetch_versions
from cryptoetl.errors import describe
from cryptoetl.metrics import RECORD_OUTCOMES, DatabaseSnapshot, Metrics, RunTotals

router = APIRouter(tags=["metrics"])
log = structlog.get_logger(__name__)

SCRAPE_TIMEOUT = 5.0


async def _snapshot(pool: WritePoolDep) -> DatabaseSnapshot | None:
    try:
        async with pool.acquire(timeout=SCRAPE_TIMEOUT) as conn:
            totals = await run_queries.totals(conn)
            rows = {v.source: v.row_count for v in await fetch_versions(conn)}
            table_bytes = {t.name: t.bytes for t in await sizes.table_sizes(conn)}
            database_bytes = await sizes.database_bytes(conn)
    except DATABASE_UNAVAILABLE as exc:
        log.warning("metrics_without_database", error=describe(exc))
        return None
    runs = [
        RunTotals(
            source=row["source"],
            status=row["status"],
            runs=row["runs"],
            records={outcome: int(row[outcome] or 0) for outcome in RECORD_OUTCOMES},
            last_finished_at=row["last_finished_at"],
        )
        for row in totals
    ]
    return DatabaseSnapshot(
        runs=runs, rows=rows, table_bytes=table_bytes, database_bytes=database_bytes
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description=(
        "Request counts and latency by route and status; ETL runs and records by source and "
        "outcome, last success time and rows per source, bytes on disk per table and of the "
        "database (read from the database at scrape time, so every replica reports the "
        "same); upstream requests, rate-limit waits and retries per source. "
        "`cryptoetl_database_up` is 0 when the database did not answer."
    ),
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request, pool: WritePoolDep) -> Response:
    registry: Metrics = request.app.state.metrics
    snapshot = await _snapshot(pool)
    body, content_type = registry.render(snapshot, request.headers.get("accept", ""))
    return Response(body, media_type=content_type)
