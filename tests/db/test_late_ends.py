"""A run whose end could not be written while the database was down: its own process writes
it once the database is back, and a run of this process left `running` with no task behind it
never blocks the next start; ETL runs and backfills share one registry of live runs."""

from __future__ import annotations

from collections.abc import Callable

from cryptoetl.config import Settings
from cryptoetl.db import runs
from cryptoetl.db.pool import Pool
from cryptoetl.etl.backfill import Backfill
from cryptoetl.etl.late_ends import LATE, LateEnds
from cryptoetl.etl.live_runs import LiveRuns
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.etl.reaper import ORPHANED
from cryptoetl.models import BackfillRequest, RunStatus, RunTrigger
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


async def test_a_backfill_of_this_process_is_live_for_its_etl_pipeline_too(
    make_settings: Callable[..., Settings], pool: Pool
) -> None:
    """One registry of live runs per process: an ETL start in the process that is running a
    backfill leaves the backfill alone; once the backfill's task is gone without recording its
    end, the next start ends it as orphaned, as it would an ETL run."""
    settings = make_settings()
    live = LiveRuns(pool)
    pipeline = Pipeline(
        settings, pool, registry=registry(coingecko=FakeFeed(pages(1, 2))), live=live
    )
    backfill = Backfill(settings, pool, owner=pipeline.owner, live=live)
    started = await backfill.begin(BackfillRequest("coinpaprika", coins=["btc-bitcoin"], days=30))
    assert live.run_ids == {started.run_id}

    (outcome,) = await pipeline.run(["coingecko"], RunTrigger.MANUAL)
    assert outcome.status is RunStatus.SUCCESS
    async with pool.acquire() as conn:
        assert [row["id"] for row in await runs.running(conn)] == [started.run_id]

    live.ended([started.run_id])  # its task ended and nothing recorded the end
    await pipeline.run(["coingecko"], RunTrigger.MANUAL)
    async with pool.acquire() as conn:
        ended = await runs.get_finished(conn, started.run_id)
        assert await runs.running(conn) == []
    assert ended is not None
    assert (ended.status, ended.error) == (RunStatus.FAILED, ORPHANED)
