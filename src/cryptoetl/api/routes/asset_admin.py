"""Admin: pin, correct or unpin one coin's asset; rebuild every automatic mapping.

    POST   /admin/asset-pins   {"source": "csv", "coin_id": "btc", "asset_id": "bitcoin"}
    DELETE /admin/asset-pins/{source}/{coin_id}
    POST   /admin/assets/rebuild

A pin is stored (`asset_pins`, origin `admin`, which wins over the shipped overrides file) and
the mapping is decided again in the same transaction, so the answer shows the decision in force.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request

from cryptoetl.api.auth import AdminDep
from cryptoetl.api.deps import WritePoolDep
from cryptoetl.api.errors import request_id_of
from cryptoetl.api.params import PRINTABLE, SourceName, one_of, validation_error
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.schemas.assets import PinIn, PinResult, RebuildResult, UnpinResult
from cryptoetl.api.schemas.common import INVALID, NOT_FOUND, UNAVAILABLE, ErrorResponse
from cryptoetl.assets.identity import is_derivative
from cryptoetl.assets.overrides import ASSET_ID, load_overrides
from cryptoetl.assets.sync import sync_assets, update_mappings
from cryptoetl.db import asset_map
from cryptoetl.db import assets as asset_queries
from cryptoetl.db.pool import Connection
from cryptoetl.models import Asset, Method
from cryptoetl.sources import REGISTRY

router = APIRouter(tags=["admin"])

ADMIN_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": "The body is not JSON."},
    401: {"model": ErrorResponse, "description": "No valid `Authorization: Bearer` token."},
    403: {"model": ErrorResponse, "description": "The admin API is disabled (no ADMIN_TOKEN)."},
}
# an enum in the OpenAPI document (a closed set), checked as every `source` is
SourcePath = Annotated[SourceName, Path(description="The coin's source.")]
CoinIdPath = Annotated[
    str,
    Path(min_length=1, max_length=500, pattern=PRINTABLE, description="The source's coin id."),
]


def _check_source(source: str, where: str) -> None:
    if source not in REGISTRY.names:
        raise validation_error(((where, "source"), one_of(REGISTRY.names)))


async def _decide_again(
    conn: Connection, source: str, coin_id: str
) -> asset_queries.Mapping | None:
    """Decide every coin again after a pin changed; the coin's decision now."""
    overrides = await asyncio.to_thread(load_overrides)
    await update_mappings(conn, overrides, sources=[source], force=True)
    return await asset_queries.get_mapping(conn, source, coin_id)


def _answer(
    request: Request,
    source: str,
    coin_id: str,
    mapping: asset_queries.Mapping | None,
    **extra: object,
) -> JsonResponse:
    body = {"source": source, "coin_id": coin_id, **extra, "mapping": mapping}
    return JsonResponse({**body, "request_id": request_id_of(request)})


@router.post(
    "/admin/asset-pins",
    response_model=PinResult,
    summary="Pin (or correct) one coin's asset",
    description=(
        "Pins `source:coin_id` to `asset_id` (null: keep it unmapped), over automatic matching "
        "and the shipped overrides file; pinning it again replaces the pin. An unknown "
        "`asset_id` is created when `symbol` and `name` are given. The coin need not be loaded "
        "yet: the pin applies when it is."
    ),
    responses={**ADMIN_ERRORS, **INVALID, **UNAVAILABLE},
)
async def pin_mapping(
    request: Request, _: AdminDep, pool: WritePoolDep, pin: PinIn
) -> JsonResponse:
    source, coin_id = pin.source, pin.coin_id
    _check_source(source, "body")
    created = False
    async with pool.acquire() as conn, conn.transaction():
        await asset_map.lock(conn)
        target = pin.asset_id
        if target is not None and not await asset_queries.asset_exists(conn, target):
            if pin.symbol is None or pin.name is None:
                raise validation_error(
                    (
                        ("body", "asset_id"),
                        f"no asset {target!r}; give `symbol` and `name` to create it",
                    )
                )
            if not re.fullmatch(ASSET_ID, target):
                raise validation_error(
                    (
                        ("body", "asset_id"),
                        "a new asset id is lower-case letters and digits in dash-separated parts",
                    )
                )
            asset = Asset(target, pin.symbol, pin.name, is_derivative(pin.name), Method.ADMIN)
            created = await asset_map.insert_assets(conn, [asset]) == 1
        await asset_map.set_admin_pin(conn, source, coin_id, target, pin.note)
        mapping = await _decide_again(conn, source, coin_id)
    return _answer(request, source, coin_id, mapping, pinned_asset_id=target, asset_created=created)


@router.delete(
    "/admin/asset-pins/{source}/{coin_id:path}",
    response_model=UnpinResult,
    summary="Remove one coin's admin pin",
    description=(
        "The coin goes back to the shipped overrides file's pin, if it has one, else to "
        "automatic matching, decided at once."
    ),
    responses={**ADMIN_ERRORS, **NOT_FOUND, **INVALID, **UNAVAILABLE},
)
async def unpin_mapping(
    request: Request, _: AdminDep, pool: WritePoolDep, source: SourcePath, coin_id: CoinIdPath
) -> JsonResponse:
    _check_source(source, "path")
    async with pool.acquire() as conn, conn.transaction():
        await asset_map.lock(conn)
        if not await asset_map.delete_admin_pin(conn, source, coin_id):
            raise HTTPException(404, f"{source}:{coin_id} has no admin pin")
        mapping = await _decide_again(conn, source, coin_id)
    return _answer(request, source, coin_id, mapping)


@router.post(
    "/admin/assets/rebuild",
    response_model=RebuildResult,
    summary="Decide every coin again",
    description=(
        "Reads every coin's name and symbol again from its newest observation and re-derives "
        "every automatic mapping (pins stay); the same as `cryptoetl assets rebuild`."
    ),
    responses={**ADMIN_ERRORS, **UNAVAILABLE},
)
async def rebuild(request: Request, _: AdminDep, pool: WritePoolDep) -> JsonResponse:
    report = await sync_assets(pool, refresh=True, force=True)
    return JsonResponse(
        {
            "new_coins": report.new_coins,
            "changed": report.changed,
            "assets_created": report.assets_created,
            "mapped": report.mapped,
            "unmapped": report.unmapped,
            "unmapped_by_rule": report.unmapped_by_rule,
            "request_id": request_id_of(request),
        }
    )
