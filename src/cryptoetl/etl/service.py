"""The service's ETL: an APScheduler job every ETL_INTERVAL_SECONDS, run by the lease's leader.

    async with open_etl(settings, pool, metrics) as etl:   # the API lifespan enters it
        await etl.trigger(["coingecko"])                    # POST /admin/etl/run
        await etl.backfill(BackfillRequest(...))            # POST /admin/backfill
        etl.is_leader                                       # /api/v1/health, /metrics

Every replica runs an `AsyncIOScheduler` with one interval job (`coalesce=True`,
`max_instances=1`, a misfire grace of a whole interval). At each tick the replica that holds
the leader lease (`cryptoetl.etl.leader`) starts a scheduled run of ENABLED_SOURCES with
`skip_busy=True` (a source already running anywhere, say from the admin trigger, is skipped and
logged; the others run) and the lease check as the fence inside `begin`'s transaction; the
other replicas do nothing. With ETL_RUN_ON_STARTUP the first tick is at once (trigger
`startup`), in the background: the API answers meanwhile. A tick waits for its run to end, so a
run longer than the interval makes APScheduler skip (and log) the ticks that fall inside it.

Backfills (`POST /admin/backfill`) run in the background beside the schedule, with the same
`RateLimits`: one request budget per provider in the process, the scheduled runs' requests
first (see `cryptoetl.sources.ratelimit`).

The admin trigger works on every replica, leader or not: the database's one-running-run-per-
source rule is the single-flight guard that the schedule and the trigger share.

The leader also runs maintenance (`cryptoetl.etl.maintain`) every MAINTENANCE_INTERVAL_SECONDS
(a day by default; the first one interval after start), fenced by the lease like a scheduled
run and recorded in `etl_runs` as source `maintenance`.

Shutdown, in order: the scheduler stops (no new tick), the runs in progress are cancelled and
recorded `failed` ("cancelled: the service is stopping"), the lease is released (a successor
takes over at its next attempt); the caller closes the pool afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from cryptoetl.config import Settings
from cryptoetl.db.pool import DATABASE_ERRORS, Pool
from cryptoetl.db.runs import StartedRun
from cryptoetl.errors import NotLeaderError, RunInProgressError, ServiceStoppingError, describe
from cryptoetl.etl.backfill import Backfill, BackfillOutcome
from cryptoetl.etl.background import STOPPING, BackgroundRuns
from cryptoetl.etl.leader import LeaderLease
from cryptoetl.etl.live_runs import LiveRuns
from cryptoetl.etl.maintain import run_maintenance
from cryptoetl.etl.owner import this_process
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import BackfillRequest, BackfillStarted, RunTrigger
from cryptoetl.sources.base import SourceEvents
from cryptoetl.sources.ratelimit import RateLimits

log = structlog.get_logger(__name__)

JOB_ID = "etl"
MAINTENANCE_JOB_ID = "maintenance"


class EtlService:
    """The ETL of one replica: background runs, the leader lease and the schedule."""

    def __init__(
        self,
        settings: Settings,
        runs: BackgroundRuns,
        lease: LeaderLease,
        backfills: Backfill | None = None,
    ) -> None:
        self.settings = settings
        self.runs = runs
        self.lease = lease
        self.backfills = backfills or Backfill(
            settings, runs.pipeline.pool, rate_limits=runs.pipeline.rate_limits
        )
        self._backfill_tasks: set[asyncio.Task[BackfillOutcome]] = set()
        self._startup_pending = settings.etl_run_on_startup
        self._stopping = False
        self._scheduler = AsyncIOScheduler(timezone=UTC)

    @property
    def replica(self) -> str:
        return self.lease.holder

    @property
    def is_leader(self) -> bool:
        return self.lease.is_leader

    async def trigger(self, sources: Sequence[str] | None) -> Mapping[str, StartedRun]:
        """A manual run (see `EtlControl.trigger`)."""
        group, _ = await self.runs.start(sources, RunTrigger.MANUAL)
        return group.runs

    async def backfill(self, request: BackfillRequest) -> BackfillStarted:
        """Start a backfill in the background (see `cryptoetl.etl.backfill`); returns once its
        run row exists. Raises `BackfillRequestError`, `RunInProgressError` (a backfill of the
        source is running), `ServiceStoppingError`."""
        if self._stopping:
            raise ServiceStoppingError()
        started = await self.backfills.begin(request)
        task = asyncio.create_task(
            self.backfills.execute(started), name=f"backfill-{started.run_id}"
        )
        self._backfill_tasks.add(task)
        task.add_done_callback(self._backfill_tasks.discard)
        return started.summary()

    def start_schedule(self) -> None:
        """Add the interval job (first tick at once with ETL_RUN_ON_STARTUP) and start."""
        interval = self.settings.etl_interval_seconds
        first: dict[str, Any] = {}
        if self.settings.etl_run_on_startup:
            first["next_run_time"] = datetime.now(UTC)
        self._scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=interval, timezone=UTC),
            id=JOB_ID,
            name="scheduled ETL",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=interval,
            **first,
        )
        every = self.settings.maintenance_interval_seconds
        if every:
            self._scheduler.add_job(
                self._maintain,
                IntervalTrigger(seconds=every, timezone=UTC),
                id=MAINTENANCE_JOB_ID,
                name="maintenance",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=every,
            )
        self._scheduler.start()
        log.info(
            "scheduler_started",
            interval_seconds=interval,
            run_on_startup=self.settings.etl_run_on_startup,
            lease_seconds=self.lease.seconds,
            replica=self.replica,
        )

    async def stop(self) -> None:
        """Stop: no new tick, the runs cancelled and recorded, then the scheduler shut down."""
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.pause()
        backfills = list(self._backfill_tasks)
        for task in backfills:  # each records its end ("cancelled: ..."); its cursor stays
            task.cancel(STOPPING)
        if backfills:
            await asyncio.wait(backfills, timeout=self.runs.stop_timeout)
        await self.runs.close()  # a tick waiting for its run returns now
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the loop's next turn

    async def _maintain(self) -> None:
        """The scheduled maintenance: on the leader only, fenced by the lease like a run."""
        await self.lease.settled()
        if not self.lease.is_leader or self._stopping:
            log.info("maintenance_left_to_leader", leader=self.lease.leader)
            return
        try:
            await run_maintenance(
                self.runs.pipeline.pool,
                self.settings,
                RunTrigger.SCHEDULE,
                self.replica,
                fence=self.lease.fence(),
            )
        except NotLeaderError as exc:
            log.warning("maintenance_fenced", reason=str(exc))
        except RunInProgressError as exc:
            log.info("maintenance_already_running", error=str(exc))
        except DATABASE_ERRORS as exc:
            log.warning("maintenance_not_run", error=describe(exc))

    async def _tick(self) -> None:
        trigger = RunTrigger.STARTUP if self._startup_pending else RunTrigger.SCHEDULE
        self._startup_pending = False
        await self.lease.settled()
        if not self.lease.is_leader:
            log.info(
                "scheduled_run_left_to_leader", trigger=trigger.value, leader=self.lease.leader
            )
            return
        try:
            group, task = await self.runs.start(
                None, trigger, skip_busy=True, fence=self.lease.fence()
            )
        except NotLeaderError as exc:
            log.warning("scheduled_run_fenced", trigger=trigger.value, reason=str(exc))
            return
        except ServiceStoppingError:
            return
        except RunInProgressError as exc:  # runs kept ending and starting under us: next tick
            log.warning("scheduled_run_not_started", trigger=trigger.value, error=str(exc))
            return
        except DATABASE_ERRORS as exc:
            log.warning("scheduled_run_not_started", trigger=trigger.value, error=describe(exc))
            return
        if group.busy:
            log.info("scheduled_sources_skipped_busy", trigger=trigger.value, busy=dict(group.busy))
        if task is None:
            return
        # The job counts as running (max_instances=1) until the run ends; `wait` neither
        # raises the run's outcome nor cancels the run when this tick is cancelled.
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # the scheduler's shutdown cancels the ticks it still runs: expected, not an error


@asynccontextmanager
async def open_etl(
    settings: Settings, pool: Pool, events: SourceEvents
) -> AsyncIterator[EtlService]:
    """The ETL of this process on `pool`, scheduled and leader-elected; see the module doc."""
    owner = str(this_process())
    limits = RateLimits()  # one budget per provider in this process: live runs and backfills
    live = LiveRuns(pool)  # one registry of live runs: ETL runs and backfills alike
    pipeline = Pipeline(settings, pool, events=events, owner=owner, rate_limits=limits, live=live)
    runs = BackgroundRuns(pipeline)
    backfills = Backfill(settings, pool, rate_limits=limits, events=events, owner=owner, live=live)
    async with LeaderLease(pool, owner, seconds=settings.scheduler_lease_seconds) as lease:
        service = EtlService(settings, runs, lease, backfills)
        service.start_schedule()
        try:
            yield service
        finally:
            await service.stop()
    # leaving the lease's block released it, after every run was recorded
