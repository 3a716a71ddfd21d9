"""Response models of the ETL-state routes: stats (the seed's shape plus extras) and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from cryptoetl.api.freshness import Row
from cryptoetl.api.schemas.common import UtcTime


def duration(started: datetime | None, finished: datetime | None, now: datetime) -> float | None:
    """A run's seconds from start to finish (to now while it runs); None before any run."""
    if started is None:
        return None
    return round(((finished or now) - started).total_seconds(), 3)


class SourceStats(BaseModel):
    """One source: its last run's numbers, and when it last succeeded and last failed."""

    source: str = Field(examples=["coinpaprika"])
    records_processed: int = Field(
        description="Records the last run fetched (so far, while it runs).", examples=[2000]
    )
    duration_seconds: float | None = Field(
        description="How long the last run took (so far, while it runs); null before any run.",
        examples=[5.23],
    )
    last_success_timestamp: UtcTime | None = Field(
        description="When the last successful run finished (UTC).",
        examples=["2025-12-27T10:30:05+00:00"],
    )
    last_failure_timestamp: UtcTime | None = Field(
        description="When the last failed or partial run finished (UTC).", examples=[None]
    )
    status: str = Field(
        description="The last run's status: running, success, partial, failed, or never_run.",
        examples=["success"],
    )
    enabled: bool = Field(description="Whether ENABLED_SOURCES includes this source.")
    total_records: int = Field(description="Rows of this source in the unified table.")
    last_run_id: int | None = None
    last_run_started_at: UtcTime | None = None
    last_run_finished_at: UtcTime | None = None
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    error: str | None = Field(default=None, description="The last run's error, if it had one.")
    last_failure_error: str | None = Field(
        default=None, description="The error of the last failed or partial run."
    )

    @classmethod
    def from_overview(cls, row: Row, *, enabled: bool, now: datetime) -> SourceStats:
        """One row of `source_status.source_overview` (durations of running runs up to `now`)."""
        return cls(
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
            last_failure_error=row["last_failure_error"],
        )


class TableSize(BaseModel):
    """One table's size on disk (a partitioned table counts all of its partitions)."""

    table: str = Field(examples=["unified_crypto_data"])
    bytes: int = Field(description="Bytes on disk, indexes and TOAST included.")
    rows_estimate: int = Field(description="The planner's row estimate (0 before ANALYZE).")


class StatsResponse(BaseModel):
    sources: list[SourceStats]
    total_records: int = Field(
        description="Rows in the unified table, all sources (exact).", examples=[30]
    )
    database_bytes: int = Field(description="Bytes on disk of the whole database.")
    table_sizes: list[TableSize] = Field(description="Every table's size, largest first.")
    request_id: str
    api_latency_ms: float


class Run(BaseModel):
    """One source's part of one ETL run."""

    id: int = Field(examples=[42])
    source: str = Field(examples=["coingecko"])
    trigger: str = Field(
        description="startup, schedule, manual, cli or backfill.", examples=["schedule"]
    )
    status: str = Field(description="running, success, partial or failed.", examples=["success"])
    started_at: UtcTime
    finished_at: UtcTime | None
    heartbeat_at: UtcTime
    owner: str = Field(description="host:pid:token of the process that ran it.")
    duration_seconds: float | None = Field(description="Finished minus started; so far if running.")
    fetched: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    batches: int
    error: str | None


class RunsPage(BaseModel):
    runs: list[Run]
    total: int = Field(description="Exact number of runs matching the filters.")
    page: int
    page_size: int
    request_id: str
    api_latency_ms: float


class RejectedRecord(BaseModel):
    id: int
    locator: str = Field(description="Where it came from: file:line, or coin@timestamp.")
    file: str | None
    line_no: int | None
    reason: str = Field(examples=["price_usd: not a number ('n/a')"])
    raw: str = Field(
        description="The record as the source sent it; past 4,096 characters cut, ending with "
        "' [... truncated: N characters in all]'."
    )
    raw_length: int = Field(description="Characters in the whole raw text as stored.")
    seen_count: int = Field(description="How many runs have met this same record.")
    first_run_id: int
    first_seen_at: UtcTime
    last_seen_at: UtcTime


class RejectedSummary(BaseModel):
    count: int = Field(description="Rejected records whose latest sighting is this run.")
    sample: list[RejectedRecord] = Field(description="The first of them, by id.")


class CoinError(BaseModel):
    coin: str
    error: str = Field(description="The provider's answer for that coin.")


class BackfillProgress(BaseModel):
    """A backfill run's request and how far it got."""

    coins: list[str]
    since: datetime
    until: datetime
    requests_total: int = Field(description="History requests planned (coins x chunks).")
    requests_done: int = Field(description="Chunks committed (or found done by an earlier run).")
    coins_done: int
    current_coin: str | None
    coin_errors: list[CoinError]

    @classmethod
    def from_row(cls, row: Row) -> BackfillProgress:
        return cls(
            coins=list(row["coins"]),
            since=row["range_start"],
            until=row["range_end"],
            requests_total=row["chunks_total"],
            requests_done=row["chunks_done"],
            coins_done=row["coins_done"],
            current_coin=row["current_coin"],
            coin_errors=[CoinError.model_validate(e) for e in row["coin_errors"]],
        )


class RunDetail(Run):
    rejected_records: RejectedSummary
    backfill: BackfillProgress | None = Field(
        default=None, description="A backfill run's coins, range and progress."
    )
    report: list[dict[str, Any]] | None = Field(
        default=None,
        description="A maintenance run's steps (name, summary, counts); null for source runs.",
    )
    request_id: str
    api_latency_ms: float


class RejectedEntry(RejectedRecord):
    """A rejected record in the listing: also its source and the run that last met it."""

    source: str = Field(examples=["csv"])
    last_run_id: int = Field(description="The run that last met this record.")


class RejectedList(BaseModel):
    """A page of `/api/v1/rejected`."""

    rejected: list[RejectedEntry] = Field(
        description="Newest run first; within a run, in the order the records were stored."
    )
    total: int | None = Field(
        description="Exact number of records matching the filters; null when more than 10,000.",
        examples=[2991],
    )
    page_size: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; null at the end.",
        examples=["812.40211"],
    )
    request_id: str
    api_latency_ms: float
