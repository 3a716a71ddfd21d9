"""GET /api/v1/data/{row_id}/lineage: where one unified row came from, raw record included.

The raw record is looked up in the raw tables of the row's source (`cryptoetl.db.raw_records`):
for sources located by coin id and their own time the page of `raw_http_pages` that holds it
(or its `raw_http` row, stored before migration 0017), for files `raw_csv` or `csv_files`.
After RAW_RETENTION_DAYS raw records are retired by whole partitions: the row keeps its values,
and its raw reference is reported `retired` (with when), not as a broken link.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, Field

from cryptoetl.api.deps import ReadPoolDep
from cryptoetl.api.errors import request_id_of
from cryptoetl.api.middleware import latency_ms
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.schemas.common import INVALID, NOT_FOUND, UNAVAILABLE
from cryptoetl.db import raw_records
from cryptoetl.db.data_query import MAX_ID
from cryptoetl.db.partitions import RAW_CSV
from cryptoetl.db.pool import Connection
from cryptoetl.models import LocatorKind
from cryptoetl.sources import REGISTRY

router = APIRouter(tags=["data"])

# A CSV row's raw id since migration 0015 is file id * 2^32 + line (ids below: raw_csv rows).
CSV_FILE_LINE = 2**32


class RawReference(BaseModel):
    table: str = Field(
        description="raw_http_pages, raw_http (stored before migration 0017), raw_csv or "
        "csv_files.",
        examples=["raw_http_pages"],
    )
    id: int | None = Field(description="The raw record's id (null: the row has none).")
    status: str = Field(
        description="stored; retired (dropped after RAW_RETENTION_DAYS, the row's values "
        "stay); missing (no such raw record, and none was retired); none (no raw record).",
        examples=["stored"],
    )
    retired_at: datetime | None = Field(description="When it was retired (status retired).")
    fetched_at: datetime | None = Field(description="When it was fetched (status stored).")
    payload: Any = Field(description="The record as the source sent it (status stored).")
    position: int | None = Field(
        default=None, description="The record's index in its page (table raw_http_pages)."
    )
    file_path: str | None = Field(
        default=None, description="A CSV row's file (table csv_files: no jsonb copy is kept)."
    )
    line_no: int | None = Field(default=None, description="A CSV row's line in its file.")


class Lineage(BaseModel):
    id: int
    source: str
    coin_id: str
    observed_at: datetime
    ingested_at: datetime
    run_id: int = Field(description="The run that last wrote the row.")
    raw: RawReference
    request_id: str
    api_latency_ms: float


def _is_file_source(source: str) -> bool:
    info = REGISTRY.info(source)
    return info is not None and info.locator is LocatorKind.FILE_LINE


@router.get(
    "/api/v1/data/{row_id}/lineage",
    response_model=Lineage,
    summary="Where one observation came from",
    description=(
        "The unified row's run and its raw record as the source sent it. A raw record older "
        "than RAW_RETENTION_DAYS was retired with its partition: the row keeps its values and "
        "`raw.status` is `retired`."
    ),
    responses={**NOT_FOUND, **INVALID, **UNAVAILABLE},
)
async def lineage(
    request: Request,
    pool: ReadPoolDep,
    row_id: Annotated[int, Path(ge=1, le=MAX_ID, description="The unified row's id.")],
) -> JsonResponse:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, source, coin_id, observed_at, ingested_at, run_id, raw_id"
            " FROM unified_crypto_data WHERE id = $1 LIMIT 1",
            row_id,
        )
        if row is None:
            raise HTTPException(404, f"no observation with id {row_id}")
        raw_id = row["raw_id"]
        if not _is_file_source(row["source"]):
            raw = _reference(
                raw_id,
                await raw_records.http_record(conn, raw_id, row["coin_id"], row["observed_at"]),
            )
        elif raw_id is not None and raw_id >= CSV_FILE_LINE:
            raw = await _csv_file_line(conn, raw_id)
        else:
            raw = _reference(raw_id, await raw_records.table_record(conn, RAW_CSV, raw_id))
    body = Lineage(
        **{k: row[k] for k in ("id", "source", "coin_id", "observed_at", "ingested_at", "run_id")},
        raw=raw,
        request_id=request_id_of(request),
        api_latency_ms=latency_ms(request),
    )
    return JsonResponse(body.model_dump(mode="json"))


async def _csv_file_line(conn: Connection, raw_id: int) -> RawReference:
    """A CSV row loaded since migration 0015: its raw id is file id * 2^32 + line."""
    path = await conn.fetchval("SELECT path FROM csv_files WHERE id = $1", raw_id // CSV_FILE_LINE)
    return RawReference(
        table="csv_files",
        id=raw_id,
        status="stored" if path is not None else "missing",
        retired_at=None,
        fetched_at=None,
        payload=None,
        file_path=path,
        line_no=raw_id % CSV_FILE_LINE,
    )


def _reference(raw_id: int | None, found: raw_records.RawRecord) -> RawReference:
    return RawReference(
        table=found.table,
        id=raw_id,
        status=found.status,
        retired_at=found.retired_at,
        fetched_at=found.fetched_at,
        payload=found.payload,
        position=found.position,
    )
