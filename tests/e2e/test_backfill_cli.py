"""`cryptoetl backfill` as a real subprocess against the loopback history endpoints and the real
database: the summary and exit codes, an unknown coin named with the provider's answer, and a
kill -9 mid-backfill that the next run resumes at the first chunk not committed, with exact
counts."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from cryptoetl.db.pool import Pool
from cryptoetl.sources import history_coingecko
from tests.support.process import CRYPTOETL, loopback_env, sigkill_when
from tests.support.raw_pages import raw_records_of
from tests.support.upstream import Upstream
from tests.support.upstream_history import coingecko_points

COINS = ("bitcoin", "ethereum", "tether")
GECKO_RAW = raw_records_of("coingecko")  # its stored raw records, one row each


async def start_backfill(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        CRYPTOETL,
        "backfill",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def backfill(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await start_backfill(env, *args)
    async with asyncio.timeout(90):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_an_unknown_coin_is_named_and_the_others_load(
    db_url: str, pool: Pool, upstream: Upstream
) -> None:
    env = loopback_env(db_url, upstream)
    args = ("--source", "coinpaprika", "--coin", "btc-bitcoin", "--coin", "xyz-nocoin")
    code, out, err = await backfill(env, *args, "--days", "30")
    assert code == 1, err
    assert "backfill run 1 (coinpaprika): partial" in out
    assert "failed: xyz-nocoin: unknown to coinpaprika: HTTP 404 Not Found: id not found" in out
    assert "inserted: 30" in out
    code, out, err = await backfill(
        env, "--source", "coinpaprika", "--coin", "btc-bitcoin", "--days", "30"
    )
    assert code == 0, err
    assert "inserted: 0" in out
    assert await pool.fetchval("SELECT count(*) FROM unified_crypto_data") == 30
    code, _, err = await backfill(env, "--source", "coinpaprika", "--days", "30")
    assert code == 2
    assert "name the coins" in err


async def test_a_killed_backfill_resumes_at_the_first_chunk_it_had_not_committed(
    db_url: str, pool: Pool, upstream: Upstream
) -> None:
    upstream.history_limit_days["coingecko"] = None
    upstream.delay["coingecko"] = 0.3
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    since = until - timedelta(days=200)  # 3 hourly chunks per coin, 9 in all
    args = ["--source", "coingecko", "--since", since.isoformat(), "--until", until.isoformat()]
    for coin in COINS:
        args += ["--coin", coin]
    env = loopback_env(db_url, upstream)
    page = {record["id"]: record for record in upstream.page_1}
    now = time.time()
    chunks = history_coingecko.chunks(since, until, datetime.now(UTC))
    assert len(chunks) == 3
    expected = {  # what the upstream serves for each chunk's request, once each
        coin: sorted(
            {
                t
                for chunk in chunks
                for t in coingecko_points(
                    page[coin], chunk.start.timestamp(), chunk.end.timestamp(), now
                )
            }
        )
        for coin in COINS
    }
    assert all(len(points) == 200 * 24 for points in expected.values())

    async def four_chunks_committed() -> bool:
        done = await pool.fetchval("SELECT max(chunks_done) FROM backfill_runs")
        return bool(done and done >= 4)

    process = await start_backfill(env, *args)
    await sigkill_when(process, four_chunks_committed, within=60)

    cursors = {
        row["coin_id"]: row["done_until"]
        for row in await pool.fetch("SELECT coin_id, done_until FROM backfill_cursors")
    }
    committed = await pool.fetchval("SELECT chunks_done FROM backfill_runs WHERE run_id = 1")
    assert 4 <= committed < 9
    stored = {
        coin: await pool.fetchval(
            "SELECT count(*) FROM unified_crypto_data WHERE coin_id = $1", coin
        )
        for coin in COINS
    }
    for coin in COINS:  # exactly the points up to each coin's cursor, nothing beyond
        reached = cursors[coin].timestamp() if coin in cursors else since.timestamp() - 1
        assert stored[coin] == sum(1 for t in expected[coin] if t <= reached)
    requests_before = len(upstream.requests_to("coingecko"))

    code, out, err = await backfill(env, *args)

    assert code == 0, err
    again = upstream.requests_to("coingecko")[requests_before:]
    charts = [r for r in again if r.path.endswith("/market_chart/range")]
    assert len(charts) == 9 - committed  # only the chunks not committed before the kill
    total = sum(len(points) for points in expected.values())
    assert f"inserted: {total - sum(stored.values())}" in out
    for coin in COINS:
        count = await pool.fetchval(
            "SELECT count(*) FROM unified_crypto_data WHERE coin_id = $1", coin
        )
        assert count == len(expected[coin])
    raw = f"SELECT count(*), count(DISTINCT (coin_id, source_updated_at)) FROM {GECKO_RAW}"  # noqa: S608
    assert tuple(await pool.fetchrow(raw) or ()) == (total, total)  # each record stored once
    first, second = await pool.fetch("SELECT status, error FROM etl_runs ORDER BY id")
    assert first["status"] == "failed"  # the killed run, reaped by the second
    assert second["status"] == "success"
