"""Thinning (cryptoetl.db.thinning) on the partitioned unified history: what is kept, what is
left alone, the rollups and totals, and what it does to loads running at the same time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptoetl.db import load, partitions
from cryptoetl.db.assets import asset_history
from cryptoetl.db.pool import Pool
from cryptoetl.db.thinning import thin

START = datetime(2024, 3, 1, tzinfo=UTC)
DAILY_START = datetime(2022, 1, 1, 23, 59, 59, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def price(coin: int, step: int) -> float:
    return float(100 * coin + (step * 7919) % 97)


def five_minutes(coins: int = 3, days: int = 2) -> list[load.StageRow]:
    return [
        (f"c{coin}", "Coin", "C", price(coin, step), 1.0 + step, 2.0 + step,
         START + timedelta(minutes=5 * step), None)
        for coin in range(coins)
        for step in range(days * 288)
    ]  # fmt: skip


def daily(days: int = 400) -> list[load.StageRow]:
    return [
        ("d0", "Daily", "D", float(day), 1.0, None, DAILY_START + timedelta(days=day), None)
        for day in range(days)
    ]


async def upsert(pool: Pool, rows: list[load.StageRow], source: str = "csv") -> None:
    async with pool.acquire() as conn:
        await partitions.ensure_for(conn, partitions.UNIFIED, [row[6] for row in rows])
        async with conn.transaction():
            await load.ensure_staging(conn)
            await load.upsert_unified(conn, source, 1, rows)


async def table(pool: Pool, query: str, *args: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in await pool.fetch(query, *args)]


async def partition_of(pool: Pool, at: datetime) -> tuple[str, int]:
    """The name and file node of the partition holding `at`."""
    row = await pool.fetchrow(
        "SELECT b.name, c.relfilenode FROM partition_bounds('unified_crypto_data') AS b"
        " JOIN pg_class AS c ON c.relname = b.name WHERE b.lo <= $1 AND $1 < b.hi",
        at,
    )
    assert row is not None
    return row["name"], row["relfilenode"]


async def test_old_partitions_keep_the_last_observation_of_each_hour(pool: Pool) -> None:
    await upsert(pool, five_minutes() + daily())
    rollups = await table(pool, "SELECT * FROM unified_hourly ORDER BY 1, 2, 3")
    _, daily_node = await partition_of(pool, DAILY_START)

    report = await thin(pool, 30, NOW)

    assert report.rows_removed == 3 * 2 * 24 * 11
    assert report.busy == []
    kept = await table(
        pool,
        "SELECT coin_id, observed_at, price_usd FROM unified_crypto_data"
        " WHERE coin_id LIKE 'c%' ORDER BY 1, 2",
    )
    assert kept == [
        {"coin_id": f"c{coin}", "observed_at": START + timedelta(minutes=5 * s),
         "price_usd": price(coin, s)}
        for coin in range(3)
        for s in range(11, 2 * 288, 12)
    ]  # fmt: skip
    # the rollups are what they were: every observation's high and low
    assert await table(pool, "SELECT * FROM unified_hourly ORDER BY 1, 2, 3") == rollups
    # hourly-or-coarser data: the daily partition was not even rewritten
    assert (await partition_of(pool, DAILY_START))[1] == daily_node
    daily_rows = "SELECT count(*) FROM unified_crypto_data WHERE coin_id = 'd0'"
    assert await pool.fetchval(daily_rows) == 400
    # the exact total follows
    assert await pool.fetchval(
        "SELECT row_count FROM source_stats WHERE source = 'csv'"
    ) == await pool.fetchval("SELECT count(*) FROM unified_crypto_data")
    # each partition is done once
    assert (await thin(pool, 30, NOW)).thinned == []


async def test_recent_data_and_zero_days_are_left_alone(pool: Pool) -> None:
    await upsert(pool, five_minutes(coins=1, days=1))
    before = await pool.fetchval("SELECT count(*) FROM unified_crypto_data")
    assert (await thin(pool, 0, NOW)).thinned == []
    # the window reaches back before the data: nothing is old enough
    assert (await thin(pool, 1500, NOW)).thinned == []
    assert await pool.fetchval("SELECT count(*) FROM unified_crypto_data") == before


async def test_an_hour_the_rollups_missed_is_rolled_up_before_thinning(pool: Pool) -> None:
    """Rows written with the triggers off (an operator's restore, say) are rolled up from the
    partition first, so thinning never loses a high or a low."""
    await pool.execute("ALTER TABLE unified_crypto_data DISABLE TRIGGER unified_hourly_insert")
    await upsert(pool, five_minutes(coins=1, days=1))
    await pool.execute("ALTER TABLE unified_crypto_data ENABLE TRIGGER unified_hourly_insert")
    assert await pool.fetchval("SELECT count(*) FROM unified_hourly") == 0

    report = await thin(pool, 30, NOW)

    assert report.thinned[0].rolled_up == 24
    first = await pool.fetchrow("SELECT * FROM unified_hourly ORDER BY hour LIMIT 1")
    prices = [price(0, s) for s in range(12)]
    assert first is not None
    assert (first["high"], first["low"], first["count"]) == (max(prices), min(prices), 12)


async def test_a_late_observation_in_a_thinned_hour_widens_its_rollup(pool: Pool) -> None:
    await upsert(pool, five_minutes(coins=1, days=1))
    await thin(pool, 30, NOW)
    late = START + timedelta(minutes=7)
    await upsert(pool, [("c0", "Coin", "C", 10_000.0, None, None, late, None)])
    hour = await pool.fetchrow("SELECT * FROM unified_hourly WHERE hour = $1", START)
    assert hour is not None
    assert (hour["high"], hour["count"], hour["close"]) == (10_000.0, 13, price(0, 11))
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM unified_crypto_data WHERE observed_at < $1",
            START + timedelta(hours=1),
        )
        == 2
    )


async def test_loads_of_current_data_commit_while_an_old_partition_is_being_thinned(
    pool: Pool,
) -> None:
    """Thinning holds a SHARE lock on the old partition while it builds the copy: a load of
    today's observations commits meanwhile; a load into that old partition waits, then commits."""
    await upsert(pool, five_minutes(coins=1, days=1))
    old, _ = await partition_of(pool, START)
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f'LOCK TABLE "{old}" IN SHARE MODE')  # what the build holds
        async with asyncio.timeout(10):
            await upsert(pool, [("c0", "Coin", "C", 1.0, None, None, now, None)], "coingecko")
        late = asyncio.create_task(
            upsert(pool, [("c0", "Coin", "C", 2.0, None, None, START + timedelta(minutes=1), None)])
        )
        await asyncio.sleep(0.5)
        assert not late.done()
    await asyncio.wait_for(late, 10)
    assert await pool.fetchval("SELECT count(*) FROM unified_crypto_data") == 288 + 2


async def test_a_busy_table_leaves_the_partition_for_the_next_run(pool: Pool) -> None:
    """A reader holding the table past every attempt: nothing is replaced, the reader is not
    disturbed, and the next run thins it."""
    await upsert(pool, five_minutes(coins=1, days=1))
    async with pool.acquire() as reader, reader.transaction():
        await reader.fetchval("SELECT count(*) FROM unified_crypto_data")
        report = await thin(pool, 30, NOW, attempts=2)
        assert report.thinned == []
        assert len(report.busy) == 1
        assert await reader.fetchval("SELECT count(*) FROM unified_crypto_data") == 288
    assert (await thin(pool, 30, NOW)).rows_removed == 288 - 24


async def test_history_reads_rollups_for_whole_hours_of_a_thinned_range(pool: Pool) -> None:
    """Rollups and observations agree on a partial hour at the edges of a request, too."""
    await upsert(pool, five_minutes(coins=1, days=1))
    await thin(pool, 30, NOW)
    await pool.execute(
        "INSERT INTO assets (asset_id, symbol, name, origin) VALUES ('coin', 'C', 'Coin', 'auto');"
        "INSERT INTO asset_mappings (source, coin_id, asset_id, rule, confidence, method, reason)"
        " VALUES ('csv', 'c0', 'coin', 'test', 1, 'auto', 'test')"
    )
    async with pool.acquire() as conn:
        whole = await asset_history(conn, "coin", interval="1h")
        edge = await asset_history(
            conn, "coin", interval="1h", since=START + timedelta(minutes=30),
            until=START + timedelta(hours=2, minutes=56),
        )  # fmt: skip
    assert [b.count for b in whole.buckets] == [12] * 24
    prices = [price(0, s) for s in range(12)]
    assert (whole.buckets[0].high, whole.buckets[0].low) == (max(prices), min(prices))
    # partial hours are read from what is stored (thinned: the kept 00:55 and 02:55), the
    # whole hour between from its rollup
    assert [(b.start.hour, b.count) for b in edge.buckets] == [(0, 1), (1, 12), (2, 1)]
