"""Run records across processes: one running run per source, dead owners reaped, fencing,
heartbeats, and a run whose database connection is killed mid-run."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.errors import RunInProgressError
from cryptoetl.etl.owner import Owner, death_reason, this_process
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.etl.reaper import reap_dead_runs
from cryptoetl.models import RunStatus, RunTrigger
from tests.support.pipeline_fakes import T0, FakeFeed, pages, registry
from tests.support.process import dead_pid


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(enabled_sources="coingecko,coinpaprika")


async def insert_running(pool: Pool, source: str, owner: str, heartbeat_age: float = 0) -> int:
    run_id: int = await pool.fetchval(
        """
        INSERT INTO etl_runs (source, trigger, owner, started_at, heartbeat_at)
        SELECT $1, 'schedule', $2, at, at FROM (SELECT now() - make_interval(secs => $3)) AS t(at)
        RETURNING id
        """,
        source,
        owner,
        heartbeat_age,
    )
    await pool.execute(
        "INSERT INTO checkpoints (source, status, last_run_id) VALUES ($1, 'running', $2)",
        source,
        run_id,
    )
    return run_id


def test_death_reason_tells_dead_pids_reused_pids_and_silent_owners() -> None:
    """Same-host owners are judged by their pid at once; others by heartbeat age."""
    host = socket.gethostname()
    now = T0
    me = this_process()
    assert death_reason(str(me), now, now, host=host) is None
    gone = Owner(host, dead_pid(), "1-abc")
    assert "died" in (death_reason(str(gone), now, now, host=host) or "")
    reused = Owner(host, me.pid, "12345-abc")  # this pid, but a process started at another time
    assert "died" in (death_reason(str(reused), now, now, host=host) or "")
    remote = "elsewhere:1:1-abc"
    assert death_reason(remote, now, now, stale_after=30, host=host) is None
    late = now.replace(minute=1)
    reason = death_reason(remote, now, late, stale_after=30, host=host)
    assert reason is not None
    assert "no heartbeat since 2025-02-09T17:00:00+00:00" in reason


async def test_begin_reaps_a_run_whose_owner_process_died(settings: Settings, pool: Pool) -> None:
    """A running row of a dead pid on this host is failed with the reason; the new run starts."""
    owner = f"{socket.gethostname()}:{dead_pid()}:1-dead"
    stuck = await insert_running(pool, "coingecko", owner)
    pipeline = Pipeline(settings, pool, registry=registry(coingecko=FakeFeed(pages(1, 2))))

    [outcome] = await pipeline.run(["coingecko"], RunTrigger.SCHEDULE)

    assert outcome.status is RunStatus.SUCCESS
    row = await pool.fetchrow(
        "SELECT status, error, finished_at FROM etl_runs WHERE id = $1", stuck
    )
    assert row is not None
    assert row["status"] == "failed"
    assert row["error"].startswith(f"owner process {owner} died; no heartbeat since ")
    assert row["finished_at"] is not None
    assert await pool.fetchval("SELECT count(*) FROM etl_runs WHERE status = 'running'") == 0


async def test_a_run_without_heartbeat_is_reaped_at_start_up(pool: Pool) -> None:
    """A run of another host silent for longer than 3 beats is failed, and its checkpoint too."""
    stuck = await insert_running(pool, "coinpaprika", "otherhost:4242:1-x", heartbeat_age=120)
    alive = await insert_running(pool, "coingecko", "otherhost:4243:1-y", heartbeat_age=5)

    reaped = await reap_dead_runs(pool)

    assert [run.run_id for run in reaped] == [stuck]
    assert reaped[0].status is RunStatus.FAILED
    assert "stopped sending heartbeats; no heartbeat since" in (reaped[0].error or "")
    checkpoint = await pool.fetchrow(
        "SELECT status, last_error, last_failure_at FROM checkpoints WHERE source = 'coinpaprika'"
    )
    assert checkpoint is not None
    assert checkpoint["status"] == "failed"
    assert checkpoint["last_error"] == reaped[0].error
    assert checkpoint["last_failure_at"] == reaped[0].finished_at
    status = await pool.fetchval("SELECT status FROM etl_runs WHERE id = $1", alive)
    assert status == "running"


async def test_second_begin_is_refused_while_a_run_is_in_progress(
    settings: Settings, pool: Pool
) -> None:
    """A live run blocks a second begin with its run id; skip_busy starts only the free ones."""
    feeds = registry(coingecko=FakeFeed(pages(1, 2)), coinpaprika=FakeFeed(pages(1, 2)))
    first = Pipeline(settings, pool, registry=feeds)
    other = Pipeline(settings, pool, registry=feeds)  # another process, in effect
    group = await first.begin(["coingecko"], RunTrigger.MANUAL)

    with pytest.raises(RunInProgressError) as caught:
        await other.begin(None, RunTrigger.MANUAL)
    assert caught.value.run_ids == [group.run_ids["coingecko"]]
    assert caught.value.sources == ["coingecko"]
    assert await pool.fetchval("SELECT count(*) FROM etl_runs") == 1  # nothing else started

    partial = await other.begin(None, RunTrigger.SCHEDULE, skip_busy=True)
    assert list(partial.run_ids) == ["coinpaprika"]
    assert partial.busy == {"coingecko": group.run_ids["coingecko"]}
    await other.execute(partial)
    await first.execute(group)
    again = await other.begin(None, RunTrigger.MANUAL)
    assert sorted(again.run_ids) == ["coingecko", "coinpaprika"]
    await other.execute(again)


async def test_heartbeat_keeps_a_long_run_alive(settings: Settings, pool: Pool) -> None:
    """While a run waits on its upstream, heartbeat_at keeps moving."""
    gate = asyncio.Event()
    feed = FakeFeed(pages(2, 2), gate=gate, gate_at=2)
    pipeline = Pipeline(settings, pool, registry=registry(coingecko=feed), heartbeat_seconds=0.05)
    group = await pipeline.begin(["coingecko"], RunTrigger.CLI)
    task = asyncio.create_task(pipeline.execute(group))
    await asyncio.wait_for(feed.reached.wait(), 10)
    run_id = group.run_ids["coingecko"]
    before = await pool.fetchval("SELECT heartbeat_at FROM etl_runs WHERE id = $1", run_id)
    await asyncio.sleep(0.3)
    after = await pool.fetchval("SELECT heartbeat_at FROM etl_runs WHERE id = $1", run_id)
    gate.set()
    [outcome] = await task
    assert after > before
    assert outcome.status is RunStatus.SUCCESS


async def test_a_reaped_run_commits_nothing_more(settings: Settings, pool: Pool) -> None:
    """If another process declares a run dead, its next batch is rolled back and it stops."""
    gate = asyncio.Event()
    feed = FakeFeed(pages(3, 2), gate=gate, gate_at=2)
    pipeline = Pipeline(settings, pool, registry=registry(coingecko=feed))
    group = await pipeline.begin(["coingecko"], RunTrigger.CLI)
    task = asyncio.create_task(pipeline.execute(group))
    await asyncio.wait_for(feed.reached.wait(), 10)
    # page 2 is being fetched while page 1 loads (read-ahead): wait for page 1's commit
    for _ in range(500):
        if await pool.fetchval(
            "SELECT batches FROM etl_runs WHERE id = $1", group.run_ids["coingecko"]
        ):
            break
        await asyncio.sleep(0.01)
    [reaped] = await reap_dead_runs(pool, stale_after=0)  # as a process with a skewed view would
    gate.set()
    [outcome] = await task

    assert outcome.status is RunStatus.FAILED
    assert outcome.error == reaped.error
    assert await pool.fetchval("SELECT count(*) FROM unified_crypto_data") == 2  # page 1 only
    cursor = await pool.fetchval("SELECT cursor FROM checkpoints WHERE source = 'coingecko'")
    assert cursor == {"page": 2}


async def test_killing_the_runs_connection_fails_it_and_the_next_run_completes(
    settings: Settings, pool: Pool
) -> None:
    """pg_terminate_backend mid-batch: that run fails with a clear error; the next run resumes."""
    gate = asyncio.Event()
    feed = FakeFeed(pages(3, 2), gate=gate, gate_at=1)
    pipeline = Pipeline(settings, pool, registry=registry(coingecko=feed))
    task = asyncio.create_task(pipeline.run(["coingecko"], RunTrigger.CLI))
    await asyncio.wait_for(feed.reached.wait(), 10)
    async with pool.acquire() as blocker, pool.acquire() as watcher:
        # Hold the checkpoint row: the run's first batch waits on it inside its transaction.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM checkpoints WHERE source = 'coingecko' FOR UPDATE")
        gate.set()
        victim = None
        for _ in range(200):
            victim = await watcher.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE $1 = any(pg_blocking_pids(pid))",
                blocker.get_server_pid(),
            )
            if victim:
                break
            await asyncio.sleep(0.05)
        assert victim, "the run never waited on the checkpoint row"
        assert await watcher.fetchval("SELECT pg_terminate_backend($1)", victim)
        await tx.rollback()
    [failed] = await task

    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith("loading batch 'page 1' failed: ")
    assert "terminating connection due to administrator command" in failed.error
    row = await pool.fetchrow("SELECT status, error FROM etl_runs WHERE id = $1", failed.run_id)
    assert row is not None
    assert (row["status"], row["error"]) == ("failed", failed.error)
    assert await pool.fetchval("SELECT count(*) FROM unified_crypto_data") == 0

    feed.gate = None
    [second] = await pipeline.run(["coingecko"], RunTrigger.CLI)
    assert second.status is RunStatus.SUCCESS
    assert second.counts.inserted == 6
    assert await pool.fetchval("SELECT count(*) FROM etl_runs WHERE status = 'running'") == 0
