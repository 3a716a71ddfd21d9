"""unified_hourly partitioned by hour (migration 0021) and compacted by maintenance
(cryptoetl.db.compaction): fresh and upgraded databases are partitioned with every rollup kept;
compaction keeps every value and shrinks the partition; late data into a compacted hour still
updates it exactly; a load committing while a partition is compacted is not lost."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cryptoetl.cli.commands import maintain
from cryptoetl.config import Settings
from cryptoetl.db import load, partitions
from cryptoetl.db.compaction import compact, compact_partition
from cryptoetl.db.migrate import default_directory, load_migrations, migrate
from cryptoetl.db.pool import Connection, Pool
from cryptoetl.etl.maintain import partitions_ahead
from cryptoetl.models import LocatorKind
from tests.db.test_hourly_rollups import FROM_SCRATCH

START = datetime(2024, 5, 6, tzinfo=UTC)  # an old month: its partition is closed
NOW = datetime.now(UTC)
COLUMNS = (
    "source, coin_id, hour, open, open_at, high, low, close, close_at,"
    " market_cap, cap_at, volume_24h, volume_at, count"
)
ROLLUPS = f"SELECT {COLUMNS} FROM unified_hourly ORDER BY 1, 2, 3"  # noqa: S608
PARTITIONED = 21


def price(coin: int, step: int) -> float:
    return float(100 * coin + (step * 7919) % 97)


def tick(step: int, coins: int = 8) -> list[load.StageRow]:
    """One 5-minute batch: every coin's observation at START + 5 minutes * step."""
    at = START + timedelta(minutes=5 * step)
    return [
        (f"c{coin}", "Coin", "C", price(coin, step), 1e6 + step, 1e3 + step if step % 3 else None,
         at, None)
        for coin in range(coins)
    ]  # fmt: skip


async def upsert(conn: Connection, rows: list[load.StageRow], source: str = "coingecko") -> None:
    """As a run writes a batch: its partitions first, then one transaction."""
    await partitions.ensure_for_batch(conn, LocatorKind.OBSERVATION, [r[6] for r in rows], NOW)
    async with conn.transaction():
        await load.ensure_staging(conn)
        await load.upsert_unified(conn, source, 1, rows)


async def live_day(pool: Pool, hours: int = 24) -> None:
    """`hours` of 5-minute batches, each its own transaction: every rollup row is written once
    and updated by the 11 batches after it, as in live operation."""
    async with pool.acquire() as conn:
        for step in range(hours * 12):
            await upsert(conn, tick(step))


async def rows_of(pool: Pool, query: str, *args: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in await pool.fetch(query, *args)]


async def exact(pool: Pool) -> list[dict[str, Any]]:
    """The rollups, asserted equal to a recomputation from the stored observations."""
    stored = await rows_of(pool, ROLLUPS)
    assert stored == await rows_of(pool, FROM_SCRATCH)
    return stored


async def partition_of(pool: Pool, at: datetime) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT b.name, b.lo, b.hi, c.relfilenode, c.reloptions"
        " FROM partition_bounds('unified_hourly') AS b JOIN pg_class AS c ON c.relname = b.name"
        " WHERE b.lo <= $1 AND $1 < b.hi",
        at,
    )
    assert row is not None
    return dict(row)


async def test_a_fresh_database_partitions_the_rollups(pool: Pool) -> None:
    """Partitioned by hour, monthly around now, yearly for old history, made by the loader's
    ensure before the batch: nothing lands in the DEFAULT partition."""
    kind = await pool.fetchval(
        "SELECT relkind::text FROM pg_class WHERE relname = 'unified_hourly'"
    )
    assert kind == "p"
    now = await partition_of(pool, NOW)
    assert now["lo"] == NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert now["reloptions"] == ["fillfactor=80"]
    async with pool.acquire() as conn:
        for year in range(2013, 2025):
            await upsert(conn, [("h", "H", "H", 1.0, None, None, datetime(year, 6, 1, tzinfo=UTC),
                                 None)])  # fmt: skip
        await upsert(conn, tick(0))
        assert await partitions.default_rows(conn, partitions.HOURLY) == 0
        bounds = await partitions.list_partitions(conn, partitions.HOURLY)
    old = [p for p in bounds if p.hi <= datetime(2025, 1, 1, tzinfo=UTC)]
    assert [(p.lo.year, p.hi.year) for p in old] == [(y, y + 1) for y in range(2013, 2025)]
    assert await pool.fetchval("SELECT count(*) FROM unified_hourly") == 12 + 8
    await exact(pool)


async def test_a_rollup_outside_every_partition_waits_in_the_default_and_is_moved(
    make_settings: Callable[..., Settings], pool: Pool
) -> None:
    """An operator's observation in a year nobody made partitions for: its rollup waits in
    unified_hourly_default, and maintenance's partitions_ahead moves it into a partition."""
    when = datetime(2011, 6, 1, 12, 30, tzinfo=UTC)
    await pool.execute(
        "INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id)"
        " VALUES ('old', 2, 'csv', $1, 0)",
        when,
    )
    async with pool.acquire() as conn:
        assert await partitions.default_rows(conn, partitions.HOURLY) == 1
    before = await exact(pool)

    report = await partitions_ahead(pool, make_settings(), NOW)

    assert report.counts["moved_from_default"] == 2  # the observation and its rollup
    async with pool.acquire() as conn:
        assert await partitions.default_rows(conn, partitions.HOURLY) == 0
        assert await partitions.default_rows(conn, partitions.UNIFIED) == 0
    assert (await partition_of(pool, when))["name"] == "unified_hourly_20110101"
    assert await exact(pool) == before


def _migrations_before(directory: Path, version: int) -> Path:
    for migration in load_migrations():
        if migration.version < version:
            shutil.copy(default_directory() / migration.filename, directory / migration.filename)
    return directory


SEED = """
INSERT INTO unified_crypto_data (coin_id, price_usd, market_cap, volume_24h, source,
                                 observed_at, run_id)
SELECT 'coin-' || (i % 30), i * 1.5, CASE WHEN i % 4 = 0 THEN NULL ELSE i * 10.0 END, i * 2.0,
       CASE WHEN i % 3 = 0 THEN 'coinpaprika' ELSE 'coingecko' END,
       date_trunc('minute', now()) + interval '2 hours' - i * interval '7 minutes', 1
FROM generate_series(1, 6000) AS i;
INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id)
SELECT 'hist-' || (d % 3), d, 'csv', timestamptz '2013-05-01' + d * interval '1 day', 2
FROM generate_series(0, 3000) AS d;
"""
SNAPSHOT = (
    "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY source, coin_id, hour))"
    " FROM unified_hourly AS t"
)


async def test_upgrade_in_place_keeps_every_rollup(empty_db_url: str, tmp_path: Path) -> None:
    """A database of the schema before 0021 with rollups is migrated to the partitioned layout:
    equal count and content, nothing in the DEFAULT partition, the triggers still work."""
    conn = await asyncpg.connect(empty_db_url)
    try:
        assert await migrate(conn, _migrations_before(tmp_path, PARTITIONED))
        await conn.execute(SEED)
        assert await conn.fetchval(
            "SELECT relkind::text FROM pg_class WHERE relname = 'unified_hourly'"
        ) == "r"  # fmt: skip
        before = tuple(await conn.fetchrow(SNAPSHOT) or ())
        assert before[0] > 1000

        assert (await migrate(conn))[0] == "0021_hourly_partitions.sql"

        assert await conn.fetchval(
            "SELECT relkind::text FROM pg_class WHERE relname = 'unified_hourly'"
        ) == "p"  # fmt: skip
        assert tuple(await conn.fetchrow(SNAPSHOT) or ()) == before
        assert await conn.fetchval("SELECT count(*) FROM unified_hourly_default") == 0
        assert await conn.fetchval("SELECT count(*) FROM partition_bounds('unified_hourly')") < 30
        recomputed = [tuple(r) for r in await conn.fetch(FROM_SCRATCH)]
        assert [tuple(r) for r in await conn.fetch(ROLLUPS)] == recomputed
        # insert, update (settled at commit) and delete still roll up
        await conn.execute(
            "INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id)"
            " VALUES ('coin-1', 1e9, 'coingecko', now() - interval '3 hours', 1)"
        )
        await conn.execute("UPDATE unified_crypto_data SET price_usd = price_usd + 0.5"
                           " WHERE coin_id = 'hist-1' AND observed_at < '2014-01-01'")  # fmt: skip
        await conn.execute("DELETE FROM unified_crypto_data WHERE coin_id = 'coin-2'")
        assert [tuple(r) for r in await conn.fetch(ROLLUPS)] == [
            tuple(r) for r in await conn.fetch(FROM_SCRATCH)
        ]
        assert await migrate(conn) == []
    finally:
        await conn.close()


async def test_compaction_keeps_every_value_and_shrinks_the_partition(pool: Pool) -> None:
    await live_day(pool)
    before = await exact(pool)
    part = await partition_of(pool, START)

    report = await compact(pool, NOW)

    assert report.busy == []
    assert [p.partition for p in report.compacted] == [part["name"]]
    done = report.compacted[0]
    assert done.rows == len(before) == 8 * 24
    assert done.copies == 1
    assert done.bytes_after < done.bytes_before
    assert await exact(pool) == before
    after = await partition_of(pool, START)
    assert after["name"] == part["name"]
    assert after["relfilenode"] != part["relfilenode"]  # a new table in its place
    assert after["reloptions"] == ["fillfactor=100"]
    recorded = await pool.fetchrow("SELECT * FROM unified_hourly_compacted")
    assert recorded is not None
    assert (recorded["partition"], recorded["rows"], recorded["bytes_after"]) == (
        part["name"], done.rows, done.bytes_after)  # fmt: skip
    # the live partitions are not closed, and a compacted one is not redone
    assert (await compact(pool, NOW)).compacted == []
    assert (await partition_of(pool, START))["relfilenode"] == after["relfilenode"]


async def test_late_data_into_a_compacted_hour_updates_it_exactly(pool: Pool) -> None:
    """New observations (a new high, an earlier open), a changed value (settled at commit)
    and a delete, into compacted hours: the rollups stay exact, and the partition is compacted
    again by the next run, values unchanged."""
    await live_day(pool, hours=4)
    await compact(pool, NOW)
    async with pool.acquire() as conn:
        await upsert(conn, [("c1", "Coin", "C", 1e6, None, None, START + timedelta(seconds=30),
                             None)])  # fmt: skip
        await upsert(conn, [("c2", "Coin", "C", 0.01, None, 5.0, START - timedelta(minutes=1),
                             None)])  # fmt: skip
        changed = tick(13)
        changed[3] = (*changed[3][:3], 1e7, *changed[3][4:])
        await upsert(conn, changed)
        await conn.execute(
            "DELETE FROM unified_crypto_data WHERE coin_id = 'c4' AND observed_at = $1",
            START + timedelta(minutes=25),
        )
    late = await exact(pool)
    hour = {(r["coin_id"], r["hour"]): r for r in late}
    assert hour[("c1", START)]["high"] == 1e6
    assert hour[("c3", START + timedelta(hours=1))]["high"] == 1e7
    assert hour[("c4", START)]["count"] == 11
    assert await pool.fetchval("SELECT count(*) FROM unified_hourly_writes") > 0

    again = await compact(pool, NOW)

    assert [p.rows for p in again.compacted] == [len(late)]
    assert await exact(pool) == late
    assert await pool.fetchval("SELECT count(*) FROM unified_hourly_writes") == 0


async def _wait_for_lock_wait(pool: Pool, pid: int) -> None:
    """Until backend `pid` waits for a lock (compaction retries a short lock_timeout)."""
    for _ in range(1000):
        waiting = await pool.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        )
        if waiting:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("compaction never waited for the open load")


async def _concurrent_load(pool: Pool) -> int:
    """A load writes late observations into the old partition and holds its transaction open
    while compaction runs; it commits once compaction waits for it. Returns copies built."""
    extra = [("late", "Late", "L", 42.0 + i, None, None, START + timedelta(minutes=i), None)
             for i in range(3)]  # fmt: skip
    async with pool.acquire() as writer, pool.acquire() as compactor:
        await partitions.ensure_for(writer, partitions.HOURLY, [START])
        transaction = writer.transaction()
        await transaction.start()
        await load.ensure_staging(writer)
        await load.upsert_unified(writer, "coingecko", 1, extra)
        pid = compactor.get_server_pid()
        part = await partition_of(pool, START)
        running = asyncio.create_task(
            compact_partition(compactor, part["name"], part["lo"], part["hi"])
        )
        await _wait_for_lock_wait(pool, pid)
        await transaction.commit()  # the load commits while compaction is under way
        done = await running
    assert done is not None
    assert await pool.fetchval("SELECT count FROM unified_hourly WHERE coin_id = 'late'") == 3
    return done.copies


async def test_a_load_committing_while_a_partition_is_first_compacted_is_kept(pool: Pool) -> None:
    """Never compacted: the write-logging trigger waits for the open load, the copy sees it."""
    await live_day(pool, hours=2)
    assert await _concurrent_load(pool) == 1
    await exact(pool)


async def test_a_load_committing_between_copy_and_swap_is_kept(pool: Pool) -> None:
    """Compacted before and written since: the copy does not see the open load, the swap
    waits for it, finds its write, and builds the copy again."""
    await live_day(pool, hours=2)
    await compact(pool, NOW)
    async with pool.acquire() as conn:
        await upsert(conn, [("c0", "Coin", "C", 7.0, None, None, START + timedelta(seconds=1),
                             None)])  # fmt: skip
    assert await _concurrent_load(pool) == 2
    await exact(pool)


async def test_cryptoetl_maintain_reports_the_compaction(
    make_settings: Callable[..., Settings], pool: Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    await live_day(pool)
    before = await exact(pool)

    assert await maintain(make_settings(full_resolution_days=0)) == 0

    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("compact_rollups:"))
    assert f"1 rollup partition(s) ending by {(NOW - timedelta(days=1)):%Y-%m-%d}" in line
    assert f"{len(before)} rows" in line
    report = await pool.fetchval(
        "SELECT report FROM etl_runs WHERE source = 'maintenance' ORDER BY id DESC LIMIT 1"
    )
    step = next(s for s in report if s["name"] == "compact_rollups")
    assert step["counts"]["partitions"] == 1
    assert step["counts"]["rows"] == len(before)
    assert 0 < step["counts"]["bytes_after"] < step["counts"]["bytes_before"]
    assert await exact(pool) == before


async def test_a_partition_that_stays_busy_is_left_for_the_next_run(pool: Pool) -> None:
    """A reader holding unified_hourly through every swap attempt: the partition is reported
    busy, left as it was (no copy left behind), and compacted by the next run."""
    await live_day(pool, hours=2)
    before = await exact(pool)
    part = await partition_of(pool, START)
    async with pool.acquire() as reader, reader.transaction():
        await reader.execute("LOCK TABLE unified_hourly IN ACCESS SHARE MODE")
        busy = await compact(pool, NOW, attempts=2)
    assert (busy.compacted, busy.busy) == ([], [part["name"]])
    assert (await partition_of(pool, START))["relfilenode"] == part["relfilenode"]
    assert await pool.fetchval("SELECT to_regclass($1)", part["name"] + "_compact") is None
    assert await pool.fetchval("SELECT count(*) FROM unified_hourly_compacted") == 0

    done = await compact(pool, NOW)

    assert [p.partition for p in done.compacted] == [part["name"]]
    assert await exact(pool) == before
