"""This process's live runs: the one registry the ETL pipeline and the backfill share.

A run row says `running` while its task executes. The reaper fails a running run whose owner
is dead; for the runs of this very process it needs to know which still have a task behind
them. Every kind of run (a scheduled or manual ETL run of a source, a backfill) registers here
when it starts and leaves when its task ends; an end that could not be written because the
database was down waits in `late_ends` and counts as live until it is written. So a run of
this process is spared exactly while something of it is still going, whatever its kind, and
one whose task ended without recording its end is reaped as orphaned, whatever its kind.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptoetl.db import runs
from cryptoetl.db.pool import Pool
from cryptoetl.etl.late_ends import RETRY_SECONDS, LateEnds
from cryptoetl.etl.owner import HEARTBEAT_SECONDS, MISSED_BEATS
from cryptoetl.etl.reaper import reap_dead_runs


class LiveRuns:
    """The runs of one process whose task has not ended, and their ends still to be written.
    One per process: give the same instance to its `Pipeline` and its `Backfill`."""

    def __init__(self, pool: Pool, *, late_every: float = RETRY_SECONDS) -> None:
        self.pool = pool
        self.late_ends = LateEnds(pool, every=late_every)
        self._running: set[int] = set()

    def started(self, run_ids: Iterable[int]) -> None:
        """These runs' tasks start (or are about to)."""
        self._running.update(run_ids)

    def ended(self, run_ids: Iterable[int]) -> None:
        """These runs' tasks are over (their end written, or handed to `late_ends`)."""
        self._running.difference_update(run_ids)

    @property
    def run_ids(self) -> set[int]:
        """Every run of this process that must not be reaped."""
        return {*self._running, *self.late_ends.run_ids}

    async def reap(
        self,
        owner: str,
        *,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        host: str | None = None,
    ) -> list[runs.FinishedRun]:
        """Write the late ends first, then fail every running run whose owner is dead, and
        those of `owner` (this process) that are not live."""
        await self.late_ends.flush()
        return await reap_dead_runs(
            self.pool,
            stale_after=heartbeat_seconds * MISSED_BEATS,
            spare_owner=owner,
            live=self.run_ids,
            host=host,
        )

    async def close(self) -> None:
        """Stop retrying late ends (the process is stopping)."""
        await self.late_ends.close()
