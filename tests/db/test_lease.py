"""The scheduler's leader lease on the real database: terms, renewal, expiry, hand-over, fencing."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import pytest

from cryptoetl.config import Settings
from cryptoetl.db import lease as lease_db
from cryptoetl.db.pool import Pool
from cryptoetl.errors import NotLeaderError
from cryptoetl.etl.leader import LeaderLease
from cryptoetl.etl.owner import this_process
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunTrigger
from tests.support.process import dead_pid

ETL = lease_db.ETL_LEASE


async def acquire(pool: Pool, holder: str, seconds: float = 30) -> lease_db.LeaseRow | None:
    async with pool.acquire() as conn:
        return await lease_db.acquire(conn, ETL, holder, seconds)


async def expire(pool: Pool) -> None:
    """Make the current lease run out now (as if its holder stopped renewing long ago)."""
    await pool.execute(
        "UPDATE scheduler_lease SET expires_at = clock_timestamp() - interval '1 second'"
    )


async def test_the_first_holder_starts_term_one_and_renewing_keeps_it(pool: Pool) -> None:
    """A free lease goes to the first asker with token 1; renewing extends it, same term."""
    first = await acquire(pool, "a", seconds=30)
    assert first is not None
    assert (first.holder, first.fencing_token, first.leader) == ("a", 1, "a")
    await asyncio.sleep(0.01)
    renewed = await acquire(pool, "a", seconds=30)
    assert renewed is not None
    assert renewed.fencing_token == 1
    assert renewed.acquired_at == first.acquired_at
    assert renewed.expires_at > first.expires_at


async def test_a_held_lease_refuses_others_until_it_expires(pool: Pool) -> None:
    """While A's lease runs, B gets nothing; once it expired, B takes it with token 2."""
    assert await acquire(pool, "a", seconds=0.3) is not None
    assert await acquire(pool, "b") is None
    async with pool.acquire() as conn:
        seen = await lease_db.read(conn)
    assert seen is not None
    assert seen.leader == "a"
    await asyncio.sleep(0.4)
    async with pool.acquire() as conn:
        lapsed = await lease_db.read(conn)
    assert lapsed is not None
    assert lapsed.leader is None
    taken = await acquire(pool, "b")
    assert taken is not None
    assert (taken.holder, taken.fencing_token) == ("b", 2)


async def test_every_new_term_increments_the_fencing_token(pool: Pool) -> None:
    """Tokens grow on each change of holder, and when a holder comes back after a lapse."""
    tokens = []
    for holder in ("a", "b", "a"):
        await expire(pool)
        row = await acquire(pool, holder)
        assert row is not None
        tokens.append(row.fencing_token)
    await expire(pool)
    again = await acquire(pool, "a")  # same holder, but its lease had lapsed: a new term
    assert again is not None
    tokens.append(again.fencing_token)
    assert tokens == [1, 2, 3, 4]


async def test_release_hands_the_lease_over_at_once(pool: Pool) -> None:
    """A released lease is free now, not after its expiry; a stale release changes nothing."""
    held = await acquire(pool, "a", seconds=30)
    assert held is not None
    async with pool.acquire() as conn:
        assert not await lease_db.release(conn, ETL, "a", held.fencing_token + 1)
        assert await acquire(pool, "b") is None
        assert await lease_db.release(conn, ETL, "a", held.fencing_token)
    taken = await acquire(pool, "b")
    assert taken is not None
    assert taken.fencing_token == held.fencing_token + 1


async def test_two_replicas_racing_for_a_free_lease_get_one_leader(pool: Pool) -> None:
    """Ten holders asking at once: exactly one gets the lease."""
    results = await asyncio.gather(*(acquire(pool, f"r{i}") for i in range(10)))
    winners = [row.holder for row in results if row is not None]
    assert len(winners) == 1


async def test_a_replica_takes_over_within_a_lease_time_when_the_leader_stops(
    pool: Pool,
) -> None:
    """B, renewing every 0.2 s, leads within the 1 s lease (+ one renewal) after A stops."""
    a = LeaderLease(pool, "a", seconds=1.0)
    assert await a.attempt()  # A takes it once and then stops renewing (it "died")
    stopped = time.monotonic()
    async with LeaderLease(pool, "b", seconds=1.0, renew_every=0.2) as b:
        await b.settled()
        assert not b.is_leader
        assert b.leader == "a"
        while not b.is_leader:
            assert time.monotonic() - stopped < 1.0 + 0.2 + 1.0, "B never took over"
            await asyncio.sleep(0.05)
        took = time.monotonic() - stopped
        assert b.fencing_token == 2
    assert took >= 0.9  # not before A's lease ran out
    async with pool.acquire() as conn:
        after = await lease_db.read(conn)
    assert after is not None
    assert after.leader is None


async def test_a_leader_cut_off_from_the_database_stops_believing_it_leads(pool: Pool) -> None:
    """`is_leader` lapses when the lease would have run out, even with no renewal at all."""
    now = [100.0]
    lease = LeaderLease(pool, "a", seconds=30, clock=lambda: now[0])
    assert await lease.attempt()
    now[0] += 29.9
    assert lease.is_leader
    now[0] += 0.2
    assert not lease.is_leader
    assert lease.fencing_token is None
    with pytest.raises(NotLeaderError):
        lease.fence()


async def test_a_stale_leader_cannot_start_a_scheduled_run(
    pool: Pool, make_settings: Callable[..., Settings]
) -> None:
    """A fence taken in A's term stops `begin` once B took over; B's own fence starts runs."""
    pipeline = Pipeline(make_settings(enabled_sources="coingecko,coinpaprika"), pool)
    a = LeaderLease(pool, "a", seconds=30)
    assert await a.attempt()
    stale_fence = a.fence()  # A is "paused" here, holding a fence of its term
    await expire(pool)
    b = LeaderLease(pool, "b", seconds=30)
    assert await b.attempt()
    with pytest.raises(NotLeaderError, match="no longer held by a with fencing token 1"):
        await pipeline.begin(None, RunTrigger.SCHEDULE, skip_busy=True, fence=stale_fence)
    assert await pool.fetchval("SELECT count(*) FROM etl_runs") == 0
    group = await pipeline.begin(None, RunTrigger.SCHEDULE, skip_busy=True, fence=b.fence())
    assert sorted(group.runs) == ["coingecko", "coinpaprika"]
    assert await pool.fetchval("SELECT count(*) FROM etl_runs WHERE status = 'running'") == 2
    # A wakes up and renews: it is refused, and knows it no longer leads
    assert not await a.attempt()
    assert a.leader == "b"


async def test_a_dead_holder_on_this_host_is_replaced_at_once(pool: Pool) -> None:
    """A lease held by a gone process of this host (killed, restarted) is taken right away;
    a live or foreign holder's lease is waited out."""
    dead = f"{socket.gethostname()}:{dead_pid()}:1-dead"
    assert await acquire(pool, dead, seconds=30) is not None
    restarted = LeaderLease(pool, str(this_process()), seconds=30)
    assert await restarted.attempt()
    assert restarted.fencing_token == 2
    for alive in (str(this_process()), f"elsewhere:{dead_pid()}:1-x"):
        await expire(pool)
        assert await acquire(pool, alive, seconds=30) is not None
        waiting = LeaderLease(pool, f"{socket.gethostname()}:1:1-other", seconds=30)
        assert not await waiting.attempt()
        assert waiting.leader == alive
