"""Request and response models of `POST /admin/etl/run` and `POST /admin/backfill`."""

from __future__ import annotations

from datetime import datetime
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


class BackfillRunRequest(BaseModel):
    """What to backfill: the options of `cryptoetl backfill`."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["coingecko", "coinpaprika"] = Field(examples=["coingecko"])
    coins: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="The source's coin ids (CoinGecko `bitcoin`, CoinPaprika `btc-bitcoin`).",
        examples=[["bitcoin", "ethereum"]],
    )
    top: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Also the first N coins by market cap in the source's latest snapshot.",
    )
    days: int | None = Field(default=None, ge=1, le=36500, description="The last D days.")
    since: datetime | None = Field(default=None, description="From this time (ISO 8601).")
    until: datetime | None = Field(
        default=None, description="To this time (with `since`; default: now)."
    )


class BackfillAccepted(BaseModel):
    """The backfill's run row exists; it goes on in the background."""

    trigger: Literal["backfill"] = "backfill"
    run_id: int = Field(examples=[43])
    source: str = Field(examples=["coingecko"])
    started_at: UtcTime
    coins: list[str]
    since: UtcTime
    until: UtcTime
    requests: int = Field(description="History requests it will make (one per coin and chunk).")
    poll: str = Field(description="Where to follow it.", examples=["/api/v1/runs/43"])
    replica: str
    request_id: str
