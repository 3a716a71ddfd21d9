"""A run whose end could not be written while the database was down: its own process writes
it once the database is back, and a run of this process left `running` with no task behind it
never blocks the next start."""

from __future__ import annotations

from collections.abc import Callable

from cryptoetl.config import Settings
from cryptoetl.db import runs
from cryptoetl.db.pool import Pool
from cryptoetl.etl.late_ends import LATE, LateEnds
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.etl.reaper import ORPHANED
from cryptoetl.models import RunStatus, RunTrigger
from tests.support.pipeline_fakes import FakeFeed, pages, registry


async def test_a_late_end_is_written_with_the_runs_own_reason(
    make_settings: Callable[..., Settings], pool: Pool
) -> None:
    pipeline = Pipeline(make_settings(), pool, registry=registry(coingecko=FakeFeed(pages(1, 2))))
    group = await pipeline.begin(["coingecko"], RunTrigger.MANUAL)
    run_id = group.run_ids["coingecko"]
    late = LateEnds(pool, every=0.05)
    late.add(run_id, RunStatus.FAILED, "loading batch 'page 1' failed: gone", False)
    await late.flush()
    async with pool.acquire() as conn:
        ended = await runs.get_finished(conn, run_id)
    assert ended is not None
    assert ended.status is RunStatus.FAILED
    assert ended.error == f"loading batch 'page 1' failed: gone; {LATE}"
    assert late.run_ids == set()
    await late.close()


async def test_a_run_of_this_process_with_no_task_is_reaped_at_the_next_start(
    make_settings: Callable[..., Settings], pool: Pool
) -> None:
    """The row says `running`, the owner (this process) is alive, but no task runs it: the
    next `begin` ends it with the reason and starts the source (no 409, no restart)."""
    feeds = registry(coingecko=FakeFeed(pages(1, 2)))
    pipeline = Pipeline(make_settings(), pool, registry=feeds)
    async with pool.acquire() as conn:
        (stuck,) = await runs.start_runs(conn, ["coingecko"], RunTrigger.SCHEDULE, pipeline.owner)
    group = await pipeline.begin(["coingecko"], RunTrigger.MANUAL)
    assert list(group.runs) == ["coingecko"]
    async with pool.acquire() as conn:
        ended = await runs.get_finished(conn, stuck.run_id)
    assert ended is not None
    assert (ended.status, ended.error) == (RunStatus.FAILED, ORPHANED)
    (outcome,) = await pipeline.execute(group)
    assert outcome.status is RunStatus.SUCCESS


async def test_a_live_run_of_this_process_is_never_reaped(
    make_settings: Callable[..., Settings], pool: Pool
) -> None:
    feeds = registry(coingecko=FakeFeed(pages(1, 2)))
    pipeline = Pipeline(make_settings(), pool, registry=feeds)
    group = await pipeline.begin(["coingecko"], RunTrigger.MANUAL)
    assert await pipeline.reap_dead_runs() == []
    (outcome,) = await pipeline.execute(group)
    assert outcome.status is RunStatus.SUCCESS
