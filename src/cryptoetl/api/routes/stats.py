"""GET /api/v1/stats: per source, the last run's numbers and the real success/failure times."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from cryptoetl.api.deps import PoolDep, SettingsDep
from cryptoetl.api.errors import request_id_of
from cryptoetl.api.freshness import Row
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.schemas import UNAVAILABLE
from cryptoetl.api.schemas_runs import SourceStats, StatsResponse
from cryptoetl.api.timing import duration, latency_ms
from cryptoetl.config import KNOWN_SOURCES
from cryptoetl.db import run_history as run_queries

router = APIRouter(tags=["etl"])


def _source_stats(row: Row, enabled: bool, now: datetime) -> SourceStats:
    return SourceStats(
        source=row["source"],
        records_processed=row["fetched"] or 0,
        duration_seconds=duration(row["started_at"], row["finished_at"], now),
        last_success_timestamp=row["last_success_at"],
        last_failure_timestamp=row["last_failure_at"],
        status=row["status"] or "never_run",
        enabled=enabled,
        total_records=row["row_count"],
        last_run_id=row["run_id"],
        last_run_started_at=row["started_at"],
        last_run_finished_at=row["finished_at"],
        inserted=row["inserted"] or 0,
        updated=row["updated"] or 0,
        unchanged=row["unchanged"] or 0,
        rejected=row["rejected"] or 0,
        error=row["error"],
    )


@router.get(
    "/api/v1/stats",
    response_model=StatsResponse,
    summary="ETL statistics per source",
    description=(
        "For every source: the last run's `records_processed` (records fetched), "
        "`duration_seconds` and `status`, and when the last successful and the last failed "
        "(or partial) runs *finished*. `total_records` is the exact number of rows in the "
        "unified table (all sources); each source's own count is in its `total_records`."
    ),
    responses=UNAVAILABLE,
)
async def stats(request: Request, pool: PoolDep, settings: SettingsDep) -> JsonResponse:
    async with pool.acquire() as conn:
        names = set(KNOWN_SOURCES) | set(await run_queries.sources_with_rows(conn))
        order = {name: i for i, name in enumerate(KNOWN_SOURCES)}
        ordered = sorted(names, key=lambda name: (order.get(name, len(order)), name))
        overview = await run_queries.source_overview(conn, ordered)
    now = datetime.now(UTC)
    enabled = settings.enabled_sources
    sources = [_source_stats(row, row["source"] in enabled, now) for row in overview]
    body = StatsResponse(
        sources=sources,
        total_records=sum(item.total_records for item in sources),
        request_id=request_id_of(request),
        api_latency_ms=latency_ms(request),
    )
    return JsonResponse(body.model_dump(mode="json"))
