"""The `/data` queries on the partitioned layout (0011, 0012) against the same rows in the
layout before it, on one server, interleaved.

    .venv/bin/python bench/partitioned_queries.py [--coins 1000] [--hours 1000] [--runs 25]

Two databases get the same `coins x hours` observations (hourly, ending now, two sources): one
migrated through 0010 (one unpartitioned table), one through every migration (weekly
partitions over the last weeks, monthly before). Each query runs `--runs` times on each, one
after the other; medians after five warm-up runs. The `latest` rows compare the two layouts'
own `latest` relations: the loose index walk of the unpartitioned table, and the
`unified_pairs` probe of the partitioned one. The database lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cryptoetl.db.data import _Args, _latest_walk  # noqa: E402
from cryptoetl.db.data_query import DataFilters  # noqa: E402
from cryptoetl.db.embedded import EmbeddedPostgres  # noqa: E402
from cryptoetl.db.migrate import load_migrations, migrate  # noqa: E402
from cryptoetl.db.server import ensure_database  # noqa: E402

SEED = """
SELECT setseed(0.13);
INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, market_cap, volume_24h,
                                 source, observed_at, run_id)
SELECT 'coin-' || c, 'Coin ' || c, 'C' || c, random() * 100, random() * 1e9, random() * 1e6,
       CASE WHEN c % 2 = 0 THEN 'coingecko' ELSE 'coinpaprika' END,
       date_trunc('hour', now()) - s * interval '1 hour', 0
FROM generate_series(0, {hours} - 1) AS s, generate_series(1, {coins}) AS c
ORDER BY s DESC, c;
ANALYZE;
"""
COLS = "id, coin_id, name, symbol, price_usd, market_cap, volume_24h, source, observed_at"
OLD_WALK = f"""(
    WITH RECURSIVE pairs AS (
        (SELECT u.source, u.coin_id FROM unified_crypto_data AS u
          ORDER BY u.source, u.coin_id LIMIT 1)
        UNION ALL
        SELECT n.source, n.coin_id FROM pairs AS p CROSS JOIN LATERAL (
            SELECT u.source, u.coin_id FROM unified_crypto_data AS u
             WHERE (u.source, u.coin_id) > (p.source, p.coin_id)
             ORDER BY u.source, u.coin_id LIMIT 1) AS n
    )
    SELECT l.* FROM pairs AS p CROSS JOIN LATERAL (
        SELECT {COLS} FROM unified_crypto_data AS u
         WHERE u.source = p.source AND u.coin_id = p.coin_id
         ORDER BY u.observed_at DESC LIMIT 1) AS l
)"""
T = "unified_crypto_data"
PARTITIONED = 11
QUERIES = {
    "page 1 (order by id)": f"SELECT {COLS} FROM {T} ORDER BY id LIMIT 101",
    "coin filter, page 1": f"SELECT {COLS} FROM {T} WHERE coin_id = 'coin-7' ORDER BY id LIMIT 101",
    "symbol filter, page 1": (
        f"SELECT {COLS} FROM {T} WHERE lower(symbol) = 'c7' ORDER BY id LIMIT 101"
    ),
    "newest first (-observed_at)": (
        f"SELECT {COLS} FROM {T} ORDER BY observed_at DESC, id DESC LIMIT 101"
    ),
    "deep cursor (id > 90 %)": f"SELECT {COLS} FROM {T} WHERE id > $1 ORDER BY id LIMIT 101",
    "one source, last day, page 1": (
        f"SELECT {COLS} FROM {T} WHERE source = 'coingecko'"
        " AND observed_at >= now() - interval '1 day' ORDER BY id LIMIT 101"
    ),
    "a coin's last 30 days by day": (
        "SELECT date_trunc('day', observed_at, 'UTC'), max(price_usd), min(price_usd)"
        f" FROM {T} WHERE source = 'coingecko' AND coin_id = 'coin-8'"
        " AND observed_at >= now() - interval '30 days' GROUP BY 1 ORDER BY 1"
    ),
}


def _latest(partitioned: bool) -> str:
    relation = _latest_walk(DataFilters(latest=True), _Args()) if partitioned else OLD_WALK
    return f"SELECT count(*), max(id) FROM {relation} AS u"


async def _database(
    server_url: str, work: Path, name: str, through: int, seed: str, hours: int
) -> str:
    url = await ensure_database(server_url, name)
    directory = work / name
    directory.mkdir()
    for migration in load_migrations():
        if migration.version <= through:
            (directory / migration.filename).write_text(migration.sql)
    conn = await asyncpg.connect(url, command_timeout=3600)
    try:
        await migrate(conn, directory)
        if through >= PARTITIONED:  # the partitions the loader would have made for these rows
            await conn.execute(
                "SELECT ensure_partitions('unified_crypto_data',"
                f" date_trunc('hour', now()) - {hours} * interval '1 hour', now())"
            )
        await conn.execute(seed)
    finally:
        await conn.close()
    return url


async def _median_ms(conn: asyncpg.Connection, sql: str, args: list[object], runs: int) -> float:
    times = []
    for _ in range(runs + 5):
        started = time.perf_counter()
        await conn.fetch(sql, *args)
        times.append(time.perf_counter() - started)
    return statistics.median(times[5:]) * 1000


async def main(coins: int, hours: int, runs: int) -> None:
    seed = SEED.format(coins=coins, hours=hours)
    with tempfile.TemporaryDirectory(prefix="cryptoetl-partq-") as tmp:
        work = Path(tmp)
        server = EmbeddedPostgres(work / "pg")
        server_url = await asyncio.to_thread(server.start)
        try:
            before = await _database(server_url, work, "before", 10, seed, hours)
            after = await _database(server_url, work, "after", 10_000, seed, hours)
            conns = [await asyncpg.connect(url) for url in (before, after)]
            deep = int(coins * hours * 0.9)
            parts = await conns[1].fetchval("SELECT count(*) FROM partition_bounds($1)", T)
            print(f"{coins * hours:,} rows; partitioned: {parts} partitions + default")
            print("| query | unpartitioned ms | partitioned ms | ratio |")
            print("|---|---:|---:|---:|")
            cases = [(name, [sql, sql], []) for name, sql in QUERIES.items()]
            cases[4] = (cases[4][0], cases[4][1], [deep])
            cases.append(("latest (every source, every coin)", [_latest(False), _latest(True)], []))
            for name, (old, new), args in cases:
                a = await _median_ms(conns[0], old, args, runs)
                b = await _median_ms(conns[1], new, args, runs)
                print(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f} |")
            for conn in conns:
                await conn.close()
        finally:
            await asyncio.to_thread(server.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=25)
    args = parser.parse_args()
    asyncio.run(main(args.coins, args.hours, args.runs))
