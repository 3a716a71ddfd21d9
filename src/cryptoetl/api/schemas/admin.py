"""Request and response models of `POST /admin/etl/run`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cryptoetl.api.params import SourceName
from cryptoetl.api.schemas.common import ErrorResponse, UtcTime
from cryptoetl.sources import REGISTRY


class EtlRunRequest(BaseModel):
    """Which sources to run; an absent body or `sources` runs ENABLED_SOURCES."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceName] | None = Field(
        default=None,
        min_length=1,
        max_length=len(REGISTRY.names) * 4,
        description="Sources to run (any known source, enabled or not); default ENABLED_SOURCES.",
        examples=[["coingecko", "coinpaprika"]],
    )


class StartedRunItem(BaseModel):
    source: str = Field(examples=["coingecko"])
    run_id: int = Field(examples=[42])
    started_at: UtcTime
    poll: str = Field(
        description="Where to follow this run: its status, counts and error.",
        examples=["/api/v1/runs/42"],
    )


class EtlRunAccepted(BaseModel):
    """The runs were started (their rows exist) and go on in the background."""

    trigger: Literal["manual"] = "manual"
    runs: list[StartedRunItem]
    run_ids: dict[str, int] = Field(
        description="The run id of each started source.", examples=[{"coingecko": 42}]
    )
    replica: str = Field(description="The replica (host:pid:token) that runs them.")
    request_id: str


class RunningRun(BaseModel):
    """A run that blocks the request (as of the answer: it may have ended since)."""

    run_id: int = Field(examples=[41])
    source: str = Field(examples=["coingecko"])
    status: str = Field(examples=["running"])
    trigger: str = Field(examples=["schedule"])
    started_at: UtcTime
    owner: str = Field(description="The process running it: host:pid:token.")


class RunConflict(ErrorResponse):
    running: list[RunningRun] = Field(description="The runs already in progress.")
