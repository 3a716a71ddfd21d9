"""The pipeline: start runs, run their sources concurrently, keep the run rows alive.

    pipeline = Pipeline(settings, pool)
    group = await pipeline.begin(None, RunTrigger.MANUAL)   # one `running` row per source
    outcomes = await pipeline.execute(group)               # fetch, transform, load

`begin` is atomic across processes: it first reaps runs whose owner died, then inserts one
`running` row per source; if any of them is already running anywhere, nothing is started and
`RunInProgressError` names the running runs (or, with `skip_busy=True`, only the free sources
start; a `fence`, checked inside that same transaction, can veto the start: the scheduler's
lease check). `execute` runs the sources concurrently (see `source_run` for what each outcome
means), one failing never stopping the others, while a heartbeat task keeps `heartbeat_at`
fresh so that other processes can tell a live run from a dead one. When a source's run has
committed data, the coins it brought are matched to assets (`cryptoetl.assets.sync`) in a
transaction of its own; a failure there is logged and changes nothing about the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import aiohttp
import structlog

from cryptoetl.assets.sync import sync_assets
from cryptoetl.config import Settings
from cryptoetl.db import checkpoints, runs
from cryptoetl.db.pool import DATABASE_ERRORS, Pool
from cryptoetl.errors import AssetOverridesError, RunInProgressError, describe
from cryptoetl.etl.late_ends import LateEnds
from cryptoetl.etl.leader import Fence
from cryptoetl.etl.live_runs import LiveRuns
from cryptoetl.etl.owner import HEARTBEAT_SECONDS, this_process
from cryptoetl.etl.source_run import ProgressSink, RunSetup, run_source
from cryptoetl.models import RunTrigger, SourceOutcome
from cryptoetl.sources import REGISTRY
from cryptoetl.sources.base import NoEvents, SourceClass, SourceContext, SourceEvents
from cryptoetl.sources.http_client import open_http_session
from cryptoetl.sources.ratelimit import RateLimits
from cryptoetl.sources.registry import Registry

log = structlog.get_logger(__name__)

SessionFactory = Callable[[Settings], AbstractAsyncContextManager[aiohttp.ClientSession]]
BEGIN_ATTEMPTS = 3
# What can make the asset mapping step fail without it being a bug.
MAPPING_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_ERRORS, AssetOverridesError)


@dataclass(frozen=True, slots=True)
class RunGroup:
    """The runs one `begin` started: `runs` by source; `busy` the sources skipped because they
    were already running (only with `skip_busy=True`), with the running run's id."""

    trigger: RunTrigger
    runs: Mapping[str, runs.StartedRun]
    busy: Mapping[str, int] = field(default_factory=dict)

    @property
    def run_ids(self) -> dict[str, int]:
        """The run id of every started source."""
        return {source: run.run_id for source, run in self.runs.items()}


class Pipeline:
    """Runs sources into the database. One instance per process is enough; it holds no
    state between runs besides its owner identity and `rate_limits`: give a long-lived
    process one `RateLimits` so request budgets and Retry-After carry from run to run."""

    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        *,
        registry: Registry = REGISTRY,
        events: SourceEvents | None = None,
        progress: ProgressSink | None = None,
        owner: str | None = None,
        session_factory: SessionFactory = open_http_session,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        rate_limits: RateLimits | None = None,
        live: LiveRuns | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.registry = registry
        self.events: SourceEvents = events if events is not None else NoEvents()
        self.progress = progress
        self.owner = owner or str(this_process())
        self.session_factory = session_factory
        self.heartbeat_seconds = heartbeat_seconds
        self.rate_limits = rate_limits
        self.host = socket.gethostname()
        # this process's live runs (shared with its backfill): the only ones of this owner
        # the reaper spares
        self.live = live if live is not None else LiveRuns(pool)

    @property
    def late_ends(self) -> LateEnds:
        """Where this process's run ends wait while the database is down."""
        return self.live.late_ends

    def _names(self, sources: Sequence[str] | None) -> list[str]:
        names = list(dict.fromkeys(sources)) if sources is not None else []
        if sources is None:
            names = list(self.settings.enabled_sources)
        # a name the service knows but this pipeline's registry lacks fails alone, in its run
        known = [*REGISTRY.names, *(n for n in self.registry.names if n not in REGISTRY)]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(known)}")
        # one order everywhere: two processes starting overlapping sets cannot deadlock
        return sorted(names)

    async def reap_dead_runs(self) -> list[runs.FinishedRun]:
        """`reap_dead_runs` for this pipeline's database, sparing its own live runs; the ends
        it could not write while the database was down are written first."""
        return await self.live.reap(
            self.owner, heartbeat_seconds=self.heartbeat_seconds, host=self.host
        )

    async def begin(
        self,
        sources: Sequence[str] | None,
        trigger: RunTrigger,
        *,
        skip_busy: bool = False,
        fence: Fence | None = None,
    ) -> RunGroup:
        """Start one run per source (None: ENABLED_SOURCES); see the module docstring."""
        names = self._names(sources)
        await self.reap_dead_runs()
        for _ in range(BEGIN_ATTEMPTS):
            group = await self._try_begin(names, trigger, skip_busy, fence)
            if group is not None:
                self.live.started(group.run_ids.values())
                log.info(
                    "runs_started", trigger=trigger.value, runs=group.run_ids, busy=dict(group.busy)
                )
                return group
        raise RunInProgressError([], names)  # pragma: no cover - three races in a row

    async def _try_begin(
        self, names: list[str], trigger: RunTrigger, skip_busy: bool, fence: Fence | None
    ) -> RunGroup | None:
        """One attempt; None when a busy run ended while we looked (nothing was started)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if fence is not None:
                    await fence(conn)
                started = await runs.start_runs(conn, names, trigger, self.owner)
                started_names = {run.source for run in started}
                busy = [name for name in names if name not in started_names]
                running = (
                    {
                        row["source"]: row["id"]
                        for row in await runs.running(conn, busy, backfill=False)
                    }
                    if busy
                    else {}
                )
                if busy and not skip_busy:
                    if len(running) < len(busy):
                        raise _Retry
                    raise RunInProgressError(list(running.values()), list(running))
                # in source order, as every writer of several checkpoint rows locks them
                ordered = sorted(started, key=lambda run: run.source)
                await checkpoints.mark_running(conn, {run.source: run.run_id for run in ordered})
        except _Retry:
            return None
        return RunGroup(trigger, {run.source: run for run in started}, running)

    async def execute(self, group: RunGroup) -> list[SourceOutcome]:
        """Run every source of `group` concurrently; one outcome per source, in group order."""
        if not group.runs:
            return []
        try:
            return await self._execute(group)
        finally:
            self.live.ended(group.run_ids.values())

    async def _execute(self, group: RunGroup) -> list[SourceOutcome]:
        async with self.session_factory(self.settings) as session:
            setup = RunSetup(
                pool=self.pool,
                context=SourceContext(
                    self.settings, session, self.events, rate_limits=self.rate_limits
                ),
                progress=self.progress,
                late_ends=self.late_ends,
            )
            beat = asyncio.create_task(self._heartbeat(list(group.run_ids.values())))
            try:
                return list(
                    await asyncio.gather(
                        *(
                            self._run_and_map(setup, run, self.registry.get(source))
                            for source, run in group.runs.items()
                        )
                    )
                )
            finally:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat

    async def _run_and_map(
        self, setup: RunSetup, run: runs.StartedRun, factory: SourceClass | None
    ) -> SourceOutcome:
        """One source's run, then the asset mapping of the coins it brought."""
        outcome = await run_source(setup, run, factory)
        if outcome.batches > 0:
            try:
                report = await sync_assets(self.pool, sources=[run.source], registry=self.registry)
            except MAPPING_ERRORS as exc:
                log.warning("asset_mapping_failed", source=run.source, error=describe(exc))
            else:
                if report.decided:
                    log.info(
                        "asset_mapping_updated",
                        source=run.source,
                        new_coins=report.new_coins,
                        changed=report.changed,
                        assets_created=report.assets_created,
                        unmapped=report.unmapped,
                    )
        return outcome

    async def run(self, sources: Sequence[str] | None, trigger: RunTrigger) -> list[SourceOutcome]:
        """`begin` then `execute` (the CLI's foreground run)."""
        return await self.execute(await self.begin(sources, trigger))

    async def _heartbeat(self, run_ids: list[int]) -> None:
        """Touch the running rows every `heartbeat_seconds` until every run has ended."""
        while run_ids:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                async with self.pool.acquire() as conn:
                    alive = await runs.heartbeat(conn, run_ids)
            except DATABASE_ERRORS as exc:
                log.warning("heartbeat_failed", error=describe(exc))
                continue
            run_ids = [run_id for run_id in run_ids if run_id in alive]


class _Retry(Exception):
    """Internal: roll back `begin`'s transaction and try again."""
