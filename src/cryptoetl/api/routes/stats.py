"""GET /api/v1/stats: per source, the last run's numbers and the real success/failure times."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from cryptoetl.api.deps import ReadPoolDep, SettingsDep
from cryptoetl.api.errors import request_id_of
from cryptoetl.api.middleware import latency_ms
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.schemas.common import UNAVAILABLE
from cryptoetl.api.schemas.runs import SourceStats, StatsResponse, TableSize
from cryptoetl.db import sizes, source_status
from cryptoetl.sources import REGISTRY

router = APIRouter(tags=["etl"])


@router.get(
    "/api/v1/stats",
    response_model=StatsResponse,
    summary="ETL statistics per source",
    description=(
        "For every source: the last run's `records_processed` (records fetched), "
        "`duration_seconds` and `status`, and when the last successful and the last failed "
        "(or partial) runs *finished*. `total_records` is the exact number of rows in the "
        "unified table (all sources); each source's own count is in its `total_records`. "
        "`database_bytes` and `table_sizes` give the disk the database takes, per table "
        "(partitions summed), largest first."
    ),
    responses=UNAVAILABLE,
)
async def stats(request: Request, pool: ReadPoolDep, settings: SettingsDep) -> JsonResponse:
    async with pool.acquire() as conn:
        overview = await source_status.stats_overview(conn, REGISTRY.names)
        tables = await sizes.table_sizes(conn)
        database_bytes = await sizes.database_bytes(conn)
    now = datetime.now(UTC)
    enabled = settings.enabled_sources
    sources = [
        SourceStats.from_overview(row, enabled=row["source"] in enabled, now=now)
        for row in overview
    ]
    body = StatsResponse(
        sources=sources,
        total_records=sum(item.total_records for item in sources),
        database_bytes=database_bytes,
        table_sizes=[
            TableSize(table=t.name, bytes=t.bytes, rows_estimate=t.rows)
            for t in sorted(tables, key=lambda t: (-t.bytes, t.name))
        ],
        request_id=request_id_of(request),
        api_latency_ms=latency_ms(request),
    )
    return JsonResponse(body.model_dump(mode="json"))
