"""POST /admin/etl/run and POST /admin/backfill: start work now, in the background; 202 with
where to poll."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from cryptoetl.api.auth import AdminDep
from cryptoetl.api.deps import WritePoolDep
from cryptoetl.api.errors import error_response, request_id_of
from cryptoetl.api.etl import BackfillDep, EtlDep
from cryptoetl.api.params import SourceName
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.schemas.admin import (
    BackfillAccepted,
    BackfillRunRequest,
    EtlRunAccepted,
    EtlRunRequest,
    RunConflict,
    StartedRunItem,
)
from cryptoetl.api.schemas.common import ErrorResponse
from cryptoetl.db import runs as run_queries
from cryptoetl.db.pool import Pool
from cryptoetl.errors import BackfillRequestError, RunInProgressError, ServiceStoppingError
from cryptoetl.models import BackfillRequest

router = APIRouter(tags=["admin"])

STOPPING_RETRY_AFTER = "5"
NOTHING_TO_RUN = "no source to run: none was requested and ENABLED_SOURCES is empty"


def _requested(query: Sequence[str] | None, body: EtlRunRequest | None) -> list[str] | None:
    """The union of `?source=` and the body's `sources`, in order; None when neither is given."""
    given = [*(query or []), *((body.sources or []) if body is not None else [])]
    return list(dict.fromkeys(given)) if given else None


async def _running(pool: Pool, error: RunInProgressError) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        found = await run_queries.get_many(conn, error.run_ids)
    rows = [found[run_id] for run_id in error.run_ids if run_id in found]
    return [
        {
            "run_id": row["id"],
            "source": row["source"],
            "status": row["status"],
            "trigger": row["trigger"],
            "started_at": row["started_at"],  # written as every time is (JsonResponse)
            "owner": row["owner"],
        }
        for row in rows
    ]


@router.post(
    "/admin/etl/run",
    status_code=202,
    response_model=EtlRunAccepted,
    summary="Run the ETL now",
    description=(
        "Starts one run per requested source (`?source=` repeated, and/or a JSON body "
        '`{"sources": [...]}`; neither: ENABLED_SOURCES) and answers 202 as soon as the run '
        "rows exist; the runs go on in the background. Poll each run at `/api/v1/runs/{id}` "
        "(`Location` names it when one source was started, else `/api/v1/runs`). Any replica "
        "can be asked, leader or not. 409 when any requested source is already running, on "
        "any replica (nothing is started then). Needs `Authorization: Bearer $ADMIN_TOKEN`."
    ),
    responses={
        202: {"headers": {"Location": {"description": "Where to poll", "schema": {}}}},
        400: {"model": ErrorResponse, "description": "The body is not valid JSON."},
        401: {"model": ErrorResponse, "description": "No valid bearer token."},
        403: {"model": ErrorResponse, "description": "No ADMIN_TOKEN is configured."},
        409: {"model": RunConflict, "description": "A requested source is already running."},
        422: {"model": ErrorResponse, "description": "An unknown source (named in `detail`)."},
        503: {"model": ErrorResponse, "description": "The database is down, or we are stopping."},
    },
)
async def run_etl(
    request: Request,
    _: AdminDep,
    etl: EtlDep,
    pool: WritePoolDep,
    source: Annotated[
        list[SourceName] | None,
        Query(description="A source to run (repeat for several).", max_length=12),
    ] = None,
    body: Annotated[EtlRunRequest | None, Body()] = None,
) -> JsonResponse:
    try:
        started = await etl.trigger(_requested(source, body))
    except RunInProgressError as exc:
        return error_response(request, 409, str(exc), extra={"running": await _running(pool, exc)})
    except ServiceStoppingError as exc:
        return error_response(request, 503, str(exc), headers={"Retry-After": STOPPING_RETRY_AFTER})
    if not started:
        return error_response(request, 422, NOTHING_TO_RUN)
    items = [
        StartedRunItem(
            source=name,
            run_id=run.run_id,
            started_at=run.started_at,
            poll=f"/api/v1/runs/{run.run_id}",
        )
        for name, run in started.items()
    ]
    accepted = EtlRunAccepted(
        runs=items,
        run_ids={item.source: item.run_id for item in items},
        replica=etl.replica,
        request_id=request_id_of(request),
    )
    location = items[0].poll if len(items) == 1 else "/api/v1/runs"
    return JsonResponse(
        accepted.model_dump(mode="json"), status_code=202, headers={"Location": location}
    )


@router.post(
    "/admin/backfill",
    status_code=202,
    response_model=BackfillAccepted,
    summary="Backfill history from a source's history endpoint",
    description=(
        "Starts a backfill (the options of `cryptoetl backfill`: `source`, `coins` and/or "
        "`top`, `days` or `since` [`until`]) and answers 202 once its run row exists; it goes "
        "on in the background, coin by coin, its requests sharing the source's request budget "
        "with the scheduled ETL (scheduled requests first). Poll `/api/v1/runs/{id}` "
        "(`Location`). 409 when a backfill of the source is already running (a live run of "
        "the source is not in the way). 422 for a request that cannot run as asked (no coin, "
        "no range, `top` with no snapshot yet). Needs `Authorization: Bearer $ADMIN_TOKEN`."
    ),
    responses={
        202: {"headers": {"Location": {"description": "Where to poll", "schema": {}}}},
        400: {"model": ErrorResponse, "description": "The body is not valid JSON."},
        401: {"model": ErrorResponse, "description": "No valid bearer token."},
        403: {"model": ErrorResponse, "description": "No ADMIN_TOKEN is configured."},
        409: {"model": RunConflict, "description": "A backfill of the source is running."},
        422: {"model": ErrorResponse, "description": "The request cannot run as asked."},
        503: {"model": ErrorResponse, "description": "The database is down, or we are stopping."},
    },
)
async def run_backfill(
    request: Request,
    _: AdminDep,
    backfills: BackfillDep,
    pool: WritePoolDep,
    body: Annotated[BackfillRunRequest, Body()],
) -> JsonResponse:
    asked = BackfillRequest(
        source=body.source,
        coins=body.coins,
        top=body.top,
        days=body.days,
        since=body.since,
        until=body.until,
    )
    try:
        started = await backfills.backfill(asked)
    except BackfillRequestError as exc:
        return error_response(request, 422, str(exc))
    except RunInProgressError as exc:
        return error_response(request, 409, str(exc), extra={"running": await _running(pool, exc)})
    except ServiceStoppingError as exc:
        return error_response(request, 503, str(exc), headers={"Retry-After": STOPPING_RETRY_AFTER})
    poll = f"/api/v1/runs/{started.run_id}"
    accepted = BackfillAccepted(
        run_id=started.run_id,
        source=started.source,
        started_at=started.started_at,
        coins=list(started.coins),
        since=started.since,
        until=started.until,
        requests=started.requests,
        poll=poll,
        replica=backfills.replica,
        request_id=request_id_of(request),
    )
    return JsonResponse(
        accepted.model_dump(mode="json"), status_code=202, headers={"Location": poll}
    )
