"""Runs started by the service (the admin trigger, the schedule) executing in the background.

    runs = BackgroundRuns(pipeline)
    group, task = await runs.start(["coingecko"], RunTrigger.MANUAL)   # rows inserted, then
    ...                                                                # the run goes on as a task
    await runs.close()   # on shutdown: cancel, record `failed`, leave nothing `running`

`start` returns as soon as the run rows exist, so a request that triggers a run answers at
once, and the work continues on the service's event loop. Single flight comes from the
pipeline's `begin`: one `running` row per source across every process, so two triggers of
the same source cannot both start, here or on another replica.

`close` is the shutdown: no new start is accepted (`ServiceStoppingError`), starts already in
flight finish, every running task is cancelled with the reason `STOPPING` (which each source's
run records as its error), and finally any run of this process still `running` (one whose
task was cancelled before its first step) is marked failed with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog

from cryptoetl.db.pool import DATABASE_ERRORS
from cryptoetl.errors import ServiceStoppingError, describe
from cryptoetl.etl.leader import Fence
from cryptoetl.etl.pipeline import Pipeline, RunGroup
from cryptoetl.etl.reaper import end_runs_of
from cryptoetl.models import RunTrigger, SourceOutcome

log = structlog.get_logger(__name__)

STOPPING = "cancelled: the service is stopping"
RunTask = asyncio.Task[list[SourceOutcome]]


class BackgroundRuns:
    """Starts runs through `pipeline` and keeps their tasks until they end."""

    def __init__(self, pipeline: Pipeline, *, stop_timeout: float = 15.0) -> None:
        self.pipeline = pipeline
        self.stop_timeout = stop_timeout
        self._tasks: set[RunTask] = set()
        self._starting = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    async def start(
        self,
        sources: Sequence[str] | None,
        trigger: RunTrigger,
        *,
        skip_busy: bool = False,
        fence: Fence | None = None,
    ) -> tuple[RunGroup, RunTask | None]:
        """Start runs (see `Pipeline.begin`, whose errors it raises) and execute them as a task.

        Returns the group and its task (None when nothing started: every source was busy).
        Raises `ServiceStoppingError` once `close` has begun.
        """
        if self._closing:
            raise ServiceStoppingError()
        self._starting += 1
        self._idle.clear()
        try:
            group = await self.pipeline.begin(sources, trigger, skip_busy=skip_busy, fence=fence)
            if not group.runs:
                return group, None
            task = asyncio.create_task(
                self.pipeline.execute(group),
                name=f"etl-{trigger.value}-{min(group.run_ids.values())}",
            )
            self._tasks.add(task)
            task.add_done_callback(self._ended)
            if self._closing:  # close() began while the rows were being inserted
                task.cancel(STOPPING)
            return group, task
        finally:
            self._starting -= 1
            if self._starting == 0:
                self._idle.set()

    def _ended(self, task: RunTask) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # run_source never raises
            log.error("run_task_crashed", exc_info=task.exception())

    async def close(self) -> None:
        """Stop: refuse new starts, cancel every run, record them, leave nothing `running`."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.stop_timeout):
                await self._idle.wait()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel(STOPPING)
        if tasks:
            log.info("runs_cancelled", reason=STOPPING, groups=len(tasks))
            _, pending = await asyncio.wait(tasks, timeout=self.stop_timeout)
            if pending:
                log.error("runs_not_stopped", groups=len(pending), timeout=self.stop_timeout)
        await self.pipeline.late_ends.close()
        try:
            await end_runs_of(self.pipeline.pool, self.pipeline.owner, STOPPING)
        except DATABASE_ERRORS as exc:
            log.warning("unfinished_runs_not_ended", error=describe(exc))
