"""Response models: the seed's shapes, field for field, documented for OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer

from cryptoetl.models.times import utc_text

# a time in every JSON response: UTC, `Z`, six fractional digits (`models/times.py`)
UtcTime = Annotated[datetime, PlainSerializer(utc_text, return_type=str, when_used="json")]


class EtlLastRun(BaseModel):
    source: str = Field(examples=["coingecko"])
    timestamp: UtcTime = Field(description="When the run started (UTC).")
    status: str = Field(examples=["success"])
    records_processed: int = Field(description="Records fetched by that run.", examples=[250])


class SchedulerState(BaseModel):
    """Who runs scheduled ETL: the holder of the leader lease (one replica among N)."""

    leader: str | None = Field(
        description="The replica (host:pid:token) holding the unexpired lease; null when none "
        "does (no replica has taken it yet, or the last leader stopped or died and its lease "
        "ran out) or the database does not answer.",
        examples=["api-1:7:1766831400-9f2c61ab"],
    )
    this_replica: str | None = Field(
        description="This replica's name; null when it runs no scheduler.",
        examples=["api-1:7:1766831400-9f2c61ab"],
    )
    is_leader: bool = Field(description="Whether this replica leads.")
    fencing_token: int | None = Field(
        description="The lease's fencing token: it grows with every new leadership term.",
        examples=[3],
    )
    lease_expires_at: UtcTime | None = Field(
        description="When the leader's lease runs out unless it is renewed (UTC)."
    )


class ReadReplicaState(BaseModel):
    """The read replica (`DATABASE_READ_URL`) as last checked (every second)."""

    target: str = Field(description="host:port/database of the replica (never a password).")
    connected: bool = Field(description="It answered the last check.")
    in_use: bool = Field(description="Reads go to it now; false: they fall back to the primary.")
    lag_seconds: float | None = Field(
        description="How far its replay is behind the primary; 0 when it has replayed "
        "everything the primary wrote; null when unknown."
    )
    max_lag_seconds: float = Field(description="READ_REPLICA_MAX_LAG_SECONDS.")
    reason: str | None = Field(description="Why reads do not go to it, when they do not.")
    checked_at: datetime | None


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"] = Field(examples=["healthy"])
    database_connected: bool
    etl_last_run: EtlLastRun | None = Field(
        description="The most recently started run of any source; null before the first run."
    )
    timestamp: UtcTime = Field(description="The server's time (UTC).")
    reason: str | None = Field(
        default=None,
        description="Why the status is not `healthy`: each problem source and what is wrong.",
        examples=["coingecko: last run failed at 2025-12-27T10:30:04+00:00: HTTP 429"],
    )
    scheduler: SchedulerState = Field(description="The scheduler's leader election.")
    read_replica: ReadReplicaState | None = Field(
        default=None, description="The read replica; null when DATABASE_READ_URL is unset."
    )


class ErrorResponse(BaseModel):
    error: str = Field(examples=["invalid_parameters"])
    detail: object = Field(description="A message, or a list of what was wrong.")
    request_id: str


class DataItem(BaseModel):
    """One observation: the seed's item fields plus `observed_at`."""

    id: int = Field(examples=[1])
    coin_id: str = Field(examples=["btc-bitcoin"])
    name: str | None = Field(examples=["Bitcoin"])
    symbol: str | None = Field(examples=["BTC"])
    price_usd: float = Field(examples=[45000.0])
    market_cap: float | None = Field(examples=[850000000000.0])
    volume_24h: float | None = Field(examples=[25000000000.0])
    source: str = Field(examples=["coinpaprika"])
    ingested_at: UtcTime = Field(
        description="When cryptoetl stored this row (UTC).", examples=["2025-12-27T10:30:05+00:00"]
    )
    observed_at: UtcTime = Field(
        description="The source's own time of the observation (UTC); the history is keyed by it.",
        examples=["2025-12-27T10:30:00+00:00"],
    )


class DataPage(BaseModel):
    """A page of `/api/v1/data`: the seed's fields plus `next_cursor`."""

    data: list[DataItem]
    total: int = Field(description="Exact number of rows matching the filters.", examples=[1234])
    page: int = Field(description="The page number of this response (1-based).", examples=[1])
    page_size: int = Field(examples=[100])
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page (fast at any depth); null at the end.",
        examples=["WzEsImlkIixudWxsLDEwMCwyLCIwMTIzNDU2Nzg5YWIiXQ"],
    )
    request_id: str = Field(examples=["550e8400-e29b-41d4-a716-446655440000"])
    api_latency_ms: float = Field(examples=[3.21])


INVALID: dict[int | str, dict[str, object]] = {
    422: {"model": ErrorResponse, "description": "A parameter is invalid (named in `detail`)."}
}
NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "No such resource."}
}
UNAVAILABLE: dict[int | str, dict[str, object]] = {
    503: {
        "model": ErrorResponse,
        "description": "The database is unavailable; retry after `Retry-After` seconds.",
    }
}
