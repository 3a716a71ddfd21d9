"""Real `cryptoetl serve` processes on one database, the loopback upstreams serving from this
test's loop: one leader runs every scheduled run once, a killed leader is replaced, the
start-up run never holds the API back, SIGTERM leaves nothing running, and `make etl`."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from cryptoetl.db.pool import Pool
from cryptoetl.etl.background import STOPPING
from tests.support.deploy_files import ROOT
from tests.support.process import ServeProcess, clean_env, loopback_env, wait_healthy
from tests.support.upstream import Upstream

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INTERVAL = 2
LEASE = 3
RENEW = LEASE / 3
Serve = Callable[..., ServeProcess]


def service_env(db_url: str, upstream: Upstream, **extra: str) -> dict[str, str]:
    """`cryptoetl serve` on the loopback upstreams, ticking every INTERVAL, lease LEASE."""
    schedule = {
        "COINGECKO_PAGES": "1",
        "ETL_INTERVAL_SECONDS": str(INTERVAL),
        "SCHEDULER_LEASE_SECONDS": str(LEASE),
        "ETL_RUN_ON_STARTUP": "true",
        "LOG_LEVEL": "INFO",
    }
    return loopback_env(db_url, upstream, **(schedule | extra))


async def scheduled_runs(pool: Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, source, trigger, owner, status, error, started_at, finished_at "
        "FROM etl_runs WHERE trigger IN ('startup', 'schedule') ORDER BY started_at, id"
    )


async def lease_row(pool: Pool) -> tuple[str, int]:
    row = await pool.fetchrow("SELECT holder, fencing_token FROM scheduler_lease")
    assert row is not None
    return row["holder"], row["fencing_token"]


async def db_now(pool: Pool) -> datetime:
    now: datetime = await pool.fetchval("SELECT clock_timestamp()")
    return now


def assert_no_overlap(runs: list[asyncpg.Record]) -> None:
    """Per source, each run started after the one before it had finished."""
    for source in {run["source"] for run in runs}:
        mine = [run for run in runs if run["source"] == source]
        for before, after in itertools.pairwise(mine):
            assert before["finished_at"] is not None, f"{before['id']} still running at {after}"
            assert after["started_at"] >= before["finished_at"], (before, after)


async def wait_for(probe: Callable[[], Any], within: float, what: str) -> float:
    """Await `probe()` until it is truthy; the seconds it took."""
    began = time.monotonic()
    while not await probe():
        assert time.monotonic() - began < within, f"{what} did not happen within {within} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - began


async def finished_runs(pool: Pool, owner: str) -> int:
    """Scheduled coinpaprika runs of `owner` that ended."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM etl_runs WHERE owner = $1 AND status <> 'running' "
        "AND trigger IN ('startup', 'schedule') AND source = 'coinpaprika'",
        owner,
    )
    return count


async def leads(pool: Pool, name: str) -> bool:
    """Whether `name` holds the unexpired lease."""
    holder = await pool.fetchval(
        "SELECT holder FROM scheduler_lease WHERE expires_at > clock_timestamp()"
    )
    return bool(holder == name)


async def scheduler_seen_by(replica: ServeProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=replica.base_url) as client:
        health = (await client.get("/api/v1/health")).json()
        metrics = (await client.get("/metrics")).text
    state: dict[str, Any] = health["scheduler"]
    state["gauge"] = "cryptoetl_scheduler_leader 1.0" in metrics
    return state


async def test_two_replicas_run_each_scheduled_run_once_and_hand_over_when_the_leader_stops(
    db_url: str, pool: Pool, upstream: Upstream, serve: Serve
) -> None:
    """One leader runs start-up and every tick once; a paused leader's lease is waited out
    and, resumed, it starts nothing; a killed leader on this host is replaced at once."""
    env = service_env(db_url, upstream)
    replicas = [serve(env, wait=False), serve(env, wait=False)]  # both start at once
    await asyncio.gather(*(asyncio.to_thread(wait_healthy, replica) for replica in replicas))
    await asyncio.sleep(3 * INTERVAL + 0.5)

    # 1. one leader; start-up once, then one run per tick, never overlapping
    runs = await scheduled_runs(pool)
    now = await db_now(pool)
    owners = {run["owner"] for run in runs}
    assert len(owners) == 1, f"scheduled runs by several replicas: {owners}"
    [first] = owners
    holder, token = await lease_row(pool)
    assert holder == first
    assert_no_overlap(runs)
    for source in ("coingecko", "coinpaprika"):
        mine = [run for run in runs if run["source"] == source]
        assert [run["trigger"] for run in mine].count("startup") == 1
        assert mine[0]["trigger"] == "startup"
        elapsed = (now - mine[0]["started_at"]).total_seconds()
        expected = 1 + int(elapsed // INTERVAL)  # the start-up run, then one per tick
        assert abs(len(mine) - expected) <= 1, (source, len(mine), elapsed)
        assert all(run["status"] in ("success", "running") for run in mine)
    [leader] = [r for r in replicas if r.process.pid == int(first.split(":")[1])]
    [other] = [r for r in replicas if r is not leader]
    seen = await scheduler_seen_by(other)
    assert (seen["leader"], seen["is_leader"], seen["gauge"]) == (first, False, False)
    second = seen["this_replica"]
    assert (await scheduler_seen_by(leader))["gauge"] is True

    # 2. pause the leader just after a run (the next tick is an interval away): the other
    # replica waits its lease out, then leads; resumed, the old leader starts nothing
    done = await finished_runs(pool, first)
    await wait_for(lambda: _more(finished_runs(pool, first), done), INTERVAL + 2, "a run")
    leader.process.send_signal(signal.SIGSTOP)
    try:
        paused_at = await db_now(pool)
        took = await wait_for(lambda: leads(pool, second), LEASE + RENEW + 2, "the take-over")
        assert took >= LEASE - RENEW - 0.5  # a live holder's lease is waited out
        assert took <= LEASE + RENEW + 1.5
        second_token = (await lease_row(pool))[1]
        assert second_token == token + 1
        await wait_for(lambda: _more(finished_runs(pool, second), 0), INTERVAL + 2, "a run")
    finally:
        leader.process.send_signal(signal.SIGCONT)
    await asyncio.sleep(INTERVAL + 0.5)  # the resumed replica ticks and renews meanwhile
    runs = await scheduled_runs(pool)
    assert {run["owner"] for run in runs if run["started_at"] > paused_at} == {second}
    assert_no_overlap([run for run in runs if run["status"] != "running"])
    seen = await scheduler_seen_by(leader)
    assert (seen["leader"], seen["is_leader"], seen["gauge"]) == (second, False, False)

    # 3. kill -9 the new leader in the middle of a run: the replica on the same host sees its
    # process is gone and takes the lease at its next renewal, without waiting the lease out;
    # it reaps the interrupted run with the reason, and runs go on
    upstream.delay["coingecko"] = 3.0  # a coingecko run now lasts longer than a tick
    interrupted: list[int] = []

    async def mid_run() -> bool:
        # a run that began within the last second: seconds of it are left for the kill
        run_id = await pool.fetchval(
            "SELECT id FROM etl_runs WHERE owner = $1 AND status = 'running' "
            "AND source = 'coingecko' AND started_at > clock_timestamp() - interval '1 second'",
            second,
        )
        interrupted.extend([run_id] if run_id is not None else [])
        return run_id is not None

    await wait_for(mid_run, 3 * INTERVAL + 3, "a fresh run of the new leader")
    other.process.kill()
    await asyncio.to_thread(other.process.wait)  # reaped, as its supervisor would
    killed_at = await db_now(pool)
    took = await wait_for(lambda: leads(pool, first), RENEW + 2, "the take-over")
    assert took <= RENEW + 1.5
    assert (await lease_row(pool))[1] == second_token + 1
    before = await finished_runs(pool, first)
    await wait_for(lambda: _more(finished_runs(pool, first), before), INTERVAL + 2, "a run")
    runs = await scheduled_runs(pool)
    assert {run["owner"] for run in runs if run["started_at"] > killed_at} == {first}
    assert_no_overlap([run for run in runs if run["status"] != "running"])
    reaped = await pool.fetchrow("SELECT status, error FROM etl_runs WHERE id = $1", interrupted[0])
    assert reaped is not None
    assert reaped["status"] == "failed"
    assert reaped["error"].startswith(f"owner process {second} died")
    seen = await scheduler_seen_by(leader)
    assert (seen["leader"], seen["is_leader"], seen["gauge"]) == (first, True, True)


async def _more(count: Awaitable[int], than: int) -> bool:
    return await count > than


async def test_the_api_answers_during_the_start_up_run_and_sigterm_leaves_nothing_running(
    db_url: str, pool: Pool, upstream: Upstream, serve: Serve
) -> None:
    """Health answers at once while the first run waits on a slow upstream; SIGTERM then
    stops the service cleanly: the run is `failed` as cancelled, nothing stays `running`."""
    slow = 15.0  # long enough for a slow machine; SIGTERM ends the test before it elapses
    upstream.delay["coingecko"] = slow
    env = service_env(db_url, upstream, ETL_INTERVAL_SECONDS="3600", HTTP_READ_TIMEOUT="60")
    launched = time.monotonic()
    served = await asyncio.to_thread(serve, env)  # returns at the first 200 from health
    ready = time.monotonic() - launched
    assert ready < slow  # start-up did not wait for the upstream

    async def only_the_slow_source_runs() -> bool:
        # coinpaprika's fast run may still be finishing when health first answers
        running = await pool.fetch("SELECT source FROM etl_runs WHERE status = 'running'")
        return [row["source"] for row in running] == ["coingecko"]

    await wait_for(only_the_slow_source_runs, slow / 2, "the fast source's run")
    async with httpx.AsyncClient(base_url=served.base_url) as client:
        for _ in range(3):
            began = time.monotonic()
            response = await client.get("/api/v1/health")
            assert response.status_code == 200
            assert time.monotonic() - began < 1.0
    assert await pool.fetchval("SELECT count(*) FROM etl_runs WHERE status = 'running'") == 1

    code = await asyncio.to_thread(served.stop, signal.SIGTERM)
    assert code == 0, served.log_text()
    runs = {row["source"]: row for row in await pool.fetch("SELECT * FROM etl_runs")}
    assert (runs["coingecko"]["status"], runs["coingecko"]["error"]) == ("failed", STOPPING)
    assert runs["coinpaprika"]["status"] == "success"
    assert await pool.fetchval("SELECT count(*) FROM etl_runs WHERE status = 'running'") == 0
    released = await pool.fetchval(
        "SELECT expires_at <= clock_timestamp() FROM scheduler_lease WHERE name = 'etl'"
    )
    assert released is True
    assert "Traceback" not in served.log_text()


async def make_etl(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "make",
        "-s",
        "-C",
        str(ROOT),
        "etl",
        *args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_make_etl_triggers_a_run_with_the_token_from_env_or_dotenv(
    db_url: str, pool: Pool, upstream: Upstream, serve: Serve, tmp_path: Path
) -> None:
    """`make etl` reads ADMIN_TOKEN from the environment, else from .env; 202 runs complete."""
    token = "make-etl-token"
    env = service_env(db_url, upstream, ADMIN_TOKEN=token, ETL_RUN_ON_STARTUP="false")
    env["ETL_INTERVAL_SECONDS"] = "3600"
    served = await asyncio.to_thread(serve, env)
    dotenv = tmp_path / ".env"
    dotenv.write_text(f'# the operator\'s settings\nLOG_LEVEL=INFO\nADMIN_TOKEN="{token}"\n')
    target = [f"API_URL={served.base_url}", f"ENV_FILE={dotenv}"]

    code, out, err = await make_etl(clean_env(), *target, "SOURCES=coinpaprika")
    assert code == 0, err
    assert '"trigger":"manual"' in out
    run_id = int(out.split('"run_ids":{"coinpaprika":')[1].split("}")[0])

    async def ended() -> bool:
        status = await pool.fetchval("SELECT status FROM etl_runs WHERE id = $1", run_id)
        return bool(status == "success")

    await wait_for(ended, 10, "the triggered run")

    code, out, _ = await make_etl(clean_env(ADMIN_TOKEN="wrong"), *target)
    assert code != 0  # the environment wins over .env, and the server refuses it
    assert '"error":"unauthorized"' in out
    code, _, err = await make_etl(
        clean_env(), f"API_URL={served.base_url}", "ENV_FILE=/nonexistent"
    )
    assert code != 0
    assert "set ADMIN_TOKEN" in err
    assert await pool.fetchval("SELECT count(*) FROM etl_runs") == 1
