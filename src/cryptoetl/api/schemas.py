"""Response models: the seed's shapes, field for field, documented for OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class EtlLastRun(BaseModel):
    source: str = Field(examples=["coingecko"])
    timestamp: datetime = Field(description="When the run started (UTC).")
    status: str = Field(examples=["success"])
    records_processed: int = Field(description="Records fetched by that run.", examples=[250])


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"] = Field(examples=["healthy"])
    database_connected: bool
    etl_last_run: EtlLastRun | None = Field(
        description="The most recently started run of any source; null before the first run."
    )
    timestamp: datetime = Field(description="The server's time (UTC).")


class ErrorResponse(BaseModel):
    error: str = Field(examples=["invalid_parameters"])
    detail: object = Field(description="A message, or a list of what was wrong.")
    request_id: str
