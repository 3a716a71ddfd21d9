"""GET /api/v1/assets, /api/v1/assets/{asset_id}, its /history, and /api/v1/asset-mappings.

Thin: parameters are validated here, the reading is `cryptoetl.db.assets` (the same functions
the dashboard calls), and the dataclasses it returns are rendered by orjson as they are.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from cryptoetl.api.deps import ReadPoolDep, SettingsDep
from cryptoetl.api.errors import request_id_of
from cryptoetl.api.freshness import stale_after_seconds
from cryptoetl.api.middleware import latency_ms
from cryptoetl.api.params import PRINTABLE, AssetIdParam, SourceParam, Time, validation_error
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.schemas.assets import AssetDetail, AssetsPage, HistoryOut, MappingsPage
from cryptoetl.api.schemas.common import INVALID, NOT_FOUND, UNAVAILABLE
from cryptoetl.db import assets as asset_queries

router = APIRouter(tags=["assets"])

MAX_ASSETS_PAGE_SIZE = 100
MAX_MAPPINGS_PAGE_SIZE = 500
COMBINED = (
    "every observation of every mapped coin of every source, as one series: open is the "
    "earliest observation in the bucket, close the latest (observations at the same instant "
    "are ordered by source name, then coin id), high and low over all of them"
)
HISTORY_DESCRIPTION = f"""
Time buckets of `interval` (`1h` or `1d`, aligned to UTC hours and days) over the observations
in [`since`, `until`) of the asset's mapped coins: `open` and `close` are the prices of the
first and the last observation in the bucket (by `observed_at`), `high` and `low` the extremes,
`market_cap` and `volume_24h` those of the last observation that has one, `count` how many
observations fell in the bucket. Buckets with no observation are left out.

Whole hours are read from the hourly rollups, which keep every observation that arrived: an
hour thinned to its last observation (`FULL_RESOLUTION_DAYS`) still reports its real open,
high, low and count. A partial hour at either end of [`since`, `until`) is computed from the
observations stored in it.

With `source`, the series of that source's coins only; without it, sources are combined:
{COMBINED}.

At most `limit` buckets (oldest first); when more follow, `next_since` is where the next page
starts (pass it as `since`).
"""

TextParam = Annotated[str | None, Query(min_length=1, max_length=200, pattern=PRINTABLE)]


PageParam = Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")]


def _paged(
    request: Request, key: str, items: list[Any], total: int, page: int, page_size: int
) -> JsonResponse:
    """A page of `items` under `key`, with the total and the request's id and latency."""
    return JsonResponse(
        {
            key: items,
            "total": total,
            "page": page,
            "page_size": page_size,
            "request_id": request_id_of(request),
            "api_latency_ms": latency_ms(request),
        }
    )


@router.get(
    "/api/v1/assets",
    response_model=AssetsPage,
    summary="Search assets",
    description=(
        "Assets with at least one mapped coin, each with the newest observation of every "
        "source side by side and the spread between them. `symbol` matches exactly (any "
        "case); `name` and `q` match a part of the name (`q` also an exact symbol or a part "
        "of the id). Exact symbol matches come first, then assets known to more sources."
    ),
    responses={**INVALID, **UNAVAILABLE},
)
async def search_assets(
    request: Request,
    pool: ReadPoolDep,
    settings: SettingsDep,
    q: Annotated[TextParam, Query(description="Symbol, or part of the name or id.")] = None,
    symbol: Annotated[TextParam, Query(description="Exact symbol, any case.")] = None,
    name: Annotated[TextParam, Query(description="Part of the name, any case.")] = None,
    page: PageParam = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_ASSETS_PAGE_SIZE)] = 20,
) -> JsonResponse:
    async with pool.acquire() as conn:
        total, views = await asset_queries.search_assets(
            conn,
            query=q,
            symbol=symbol,
            name=name,
            limit=page_size,
            offset=(page - 1) * page_size,
            stale_after_seconds=stale_after_seconds(settings.etl_interval_seconds),
        )
    return _paged(request, "assets", views, total, page, page_size)  # orjson writes dataclasses


@router.get(
    "/api/v1/assets/{asset_id}",
    response_model=AssetDetail,
    summary="One asset across sources",
    description=(
        "The newest observation of each mapped source side by side (price, market cap, "
        "volume, when it was observed and how old it is), the spread between them, and every "
        "source coin mapped to the asset."
    ),
    responses={**NOT_FOUND, **INVALID, **UNAVAILABLE},
)
async def get_asset(
    request: Request, pool: ReadPoolDep, settings: SettingsDep, asset_id: AssetIdParam
) -> JsonResponse:
    async with pool.acquire() as conn:
        view = await asset_queries.get_asset(
            conn, asset_id, stale_after_seconds=stale_after_seconds(settings.etl_interval_seconds)
        )
    if view is None:
        raise HTTPException(404, f"no asset with id {asset_id!r}")
    body = dataclasses.asdict(view)
    body["request_id"] = request_id_of(request)
    body["api_latency_ms"] = latency_ms(request)
    return JsonResponse(body)


@router.get(
    "/api/v1/assets/{asset_id}/history",
    response_model=HistoryOut,
    summary="An asset's price history in time buckets",
    description=HISTORY_DESCRIPTION,
    responses={**NOT_FOUND, **INVALID, **UNAVAILABLE},
)
async def asset_history(
    request: Request,
    pool: ReadPoolDep,
    asset_id: AssetIdParam,
    interval: Annotated[
        Literal["1h", "1d"], Query(description="Bucket size: an hour or a day (UTC).")
    ] = "1h",
    since: Annotated[
        Time, Query(description="Observations at or after this time (ISO 8601, a date, Unix s).")
    ] = None,
    until: Annotated[Time, Query(description="Observations before this time.")] = None,
    source: SourceParam = None,
    limit: Annotated[
        int, Query(ge=1, le=asset_queries.MAX_BUCKETS, description="At most this many buckets.")
    ] = asset_queries.MAX_BUCKETS,
) -> JsonResponse:
    if since is not None and until is not None and since >= until:
        raise validation_error((("query", "until"), "must be after since"))
    async with pool.acquire() as conn:
        if not await asset_queries.asset_exists(conn, asset_id):
            raise HTTPException(404, f"no asset with id {asset_id!r}")
        history = await asset_queries.asset_history(
            conn, asset_id, interval=interval, since=since, until=until, source=source, limit=limit
        )
    return JsonResponse(
        {
            "asset_id": asset_id,
            "interval": interval,
            "source": source,
            "combined": None if source is not None else COMBINED,
            "since": since,
            "until": until,
            "buckets": history.buckets,
            "next_since": history.next_since,
            "request_id": request_id_of(request),
            "api_latency_ms": latency_ms(request),
        }
    )


@router.get(
    "/api/v1/asset-mappings",
    response_model=MappingsPage,
    summary="How each source coin was mapped to an asset, or why it was not",
    description=(
        "One row per (source, coin_id) ever loaded: its asset (null: unmapped), the rule, "
        "confidence and evidence, who decided (auto, file, admin) and when. "
        "`status=unmapped` lists what needs an operator's look, with the reason."
    ),
    responses={**INVALID, **UNAVAILABLE},
)
async def list_mappings(
    request: Request,
    pool: ReadPoolDep,
    source: SourceParam = None,
    status: Annotated[
        Literal["mapped", "unmapped"] | None, Query(description="Only mapped, or unmapped, coins.")
    ] = None,
    asset_id: Annotated[TextParam, Query(description="Only coins mapped to this asset.")] = None,
    page: PageParam = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_MAPPINGS_PAGE_SIZE)] = 100,
) -> JsonResponse:
    async with pool.acquire() as conn:
        total, rows = await asset_queries.list_mappings(
            conn,
            source=source,
            status=status,
            asset_id=asset_id,
            limit=page_size,
            offset=(page - 1) * page_size,
        )
    return _paged(request, "mappings", rows, total, page, page_size)
