"""What a run is: its trigger, its status, its counts and its outcome (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class RunTrigger(StrEnum):
    """What started a run."""

    STARTUP = "startup"
    SCHEDULE = "schedule"
    MANUAL = "manual"
    CLI = "cli"
    BACKFILL = "backfill"  # history from a provider's history endpoint (cryptoetl.etl.backfill)


class RunStatus(StrEnum):
    """The state of one source's run. Only `running` is not final."""

    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RunCounts:
    """What one source's run did to the data."""

    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0

    def __add__(self, other: RunCounts) -> RunCounts:
        return RunCounts(
            fetched=self.fetched + other.fetched,
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
            rejected=self.rejected + other.rejected,
        )


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    """The end of one source's run, as recorded in `etl_runs`."""

    source: str
    run_id: int
    status: RunStatus
    counts: RunCounts
    started_at: datetime
    finished_at: datetime
    error: str | None = None
    batches: int = 0
