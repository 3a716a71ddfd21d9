"""Rollup compaction bench: bytes per hourly rollup row while live, vacuumed, and compacted
(issue 13, migration 0021, `cryptoetl.db.compaction`).

    .venv/bin/python bench/rollup_compaction.py [--coins 3472] [--hours 24]

Starts its own embedded PostgreSQL in a temporary directory (removed afterwards) and writes
`--hours` hours of 5-minute batches of `--coins` observations (the default coin count: 1,000
CoinGecko coins and 2,472 CoinPaprika tickers) through the loader's upsert
(`cryptoetl.db.load`, the batch's partitions made first, one transaction per batch), so each
rollup row is written once and updated by the 11 batches after it, as in live operation. The
hours lie in the previous calendar month, so they fill one monthly partition of
unified_hourly that is closed now. It then reports that partition's bytes (heap, indexes,
free space and visibility maps) per rollup row: as written; after a VACUUM (what autovacuum
leaves); and after `compact` replaced it by a sorted copy filled to 100 % (with the time the
compaction took and how long it locked unified_hourly). Raw records are not written: they do
not touch the rollups.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cryptoetl.db import load, partitions  # noqa: E402
from cryptoetl.db.compaction import compact  # noqa: E402
from cryptoetl.db.embedded import EmbeddedPostgres  # noqa: E402
from cryptoetl.db.migrate import migrate  # noqa: E402
from cryptoetl.db.pool import Pool, open_pool, with_database  # noqa: E402
from cryptoetl.models import LocatorKind  # noqa: E402

DATABASE = "rollup_bench"
SIZE = """
SELECT pg_total_relation_size(b.name::regclass) AS bytes,
       pg_relation_size(b.name::regclass) AS heap, b.name
FROM partition_bounds('unified_hourly') AS b WHERE b.lo <= $1 AND $1 < b.hi
"""


def first_hour() -> datetime:
    """The first instant of the previous calendar month (UTC)."""
    now = datetime.now(UTC)
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (this_month - timedelta(days=1)).replace(day=1)


async def write(pool: Pool, coins: int, hours: int, start: datetime) -> float:
    """`hours` of 5-minute batches of `coins` observations; returns rows/s."""
    started = time.perf_counter()
    async with pool.acquire() as conn:
        for step in range(hours * 12):
            at = start + timedelta(minutes=5 * step)
            rows: list[load.StageRow] = [
                (f"coin-{c}", "Coin", "C", 1.0 + ((c * 31 + step * 7) % 1000) / 10,
                 1e9 + c * step, 1e6 + step, at, None)
                for c in range(coins)
            ]  # fmt: skip
            await partitions.ensure_for_batch(conn, LocatorKind.OBSERVATION, [at], at)
            async with conn.transaction():
                await load.ensure_staging(conn)
                await load.upsert_unified(conn, "coingecko", 1, rows)
    return coins * hours * 12 / (time.perf_counter() - started)


async def size(pool: Pool, start: datetime) -> tuple[int, int, str]:
    row = await pool.fetchrow(SIZE, start)
    assert row is not None
    return int(row["bytes"]), int(row["heap"]), str(row["name"])


async def run(url: str, coins: int, hours: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    start = first_hour()
    async with open_pool(url, min_size=1, max_size=2) as pool:
        rate = await write(pool, coins, hours, start)
        rows = int(await pool.fetchval("SELECT count(*) FROM unified_hourly"))
        hot = await pool.fetchrow(
            "SELECT sum(n_tup_upd) AS upd, sum(n_tup_hot_upd) AS hot FROM pg_stat_user_tables"
            " WHERE relname LIKE 'unified_hourly_2%'"
        )
        written, written_heap, name = await size(pool, start)
        await pool.execute(f"VACUUM {name}")
        vacuumed, vacuumed_heap, _ = await size(pool, start)
        began = time.perf_counter()
        report = await compact(pool, datetime.now(UTC))
        seconds = time.perf_counter() - began
        compacted, compacted_heap, _ = await size(pool, start)
    assert [p.partition for p in report.compacted] == [name], report
    print(f"## rollup compaction, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}")
    print(
        f"{coins:,} coins x {hours} h of 5-minute batches: {coins * hours * 12:,} observations"
        f" at {rate:,.0f}/s, {rows:,} rollup rows in {name}"
    )
    if hot is not None and hot["upd"]:
        print(f"rollup updates: {int(hot['upd']):,}, HOT {100 * hot['hot'] / hot['upd']:.1f} %")
    print("| state | bytes | bytes/row (all) | bytes/row (heap) |")
    print("|---|---:|---:|---:|")
    for label, total, heap in (
        ("as written (fillfactor 80)", written, written_heap),
        ("after VACUUM", vacuumed, vacuumed_heap),
        ("compacted (sorted, fillfactor 100)", compacted, compacted_heap),
    ):
        print(f"| {label} | {total:,} | {total / rows:.0f} | {heap / rows:.0f} |")
    done = report.compacted[0]
    print(
        f"compaction: {seconds:.2f} s for {done.rows:,} rows, unified_hourly locked"
        f" {done.lock_ms:.0f} ms for the swap; {done.copies} copy built"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coins", type=int, default=3472)
    parser.add_argument("--hours", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cryptoetl-rollup-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        server_url = server.start()
        try:

            async def go() -> None:
                admin = await asyncpg.connect(server_url)
                try:
                    await admin.execute(f"CREATE DATABASE {DATABASE}")
                finally:
                    await admin.close()
                await run(with_database(server_url, DATABASE), args.coins, args.hours)

            asyncio.run(go())
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
