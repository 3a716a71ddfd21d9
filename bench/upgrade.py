"""What the upgrade to partitioned storage (migration 0011) costs a database with data in it.

    .venv/bin/python bench/upgrade.py [--rows 1000000] [--rounds 3]

Each round builds a database at the schema before 0011 (every earlier migration), fills it with
`rows` unified observations (5-minute steps of 1,000 coins, two sources, ending now) and a raw
HTTP record of about 1 KB of jsonb for each, then times `migrate` applying 0011 alone (the
ordinary upgrade path). The same-run limit is a plain rewrite of the same data: `CREATE TABLE
AS` copies of both tables plus the same indexes built on them, unpartitioned, in one
transaction; the ratio says how much more the upgrade costs than copying the data once.
Prints medians; the database lives in a temporary directory that is removed afterwards.
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

from cryptoetl.db.embedded import EmbeddedPostgres  # noqa: E402
from cryptoetl.db.migrate import load_migrations, migrate  # noqa: E402
from cryptoetl.db.server import ensure_database  # noqa: E402

PARTITIONED = 11
COINS = 1000

SEED = f"""
INSERT INTO etl_runs (source, trigger, status, finished_at, owner)
VALUES ('coingecko', 'cli', 'success', now(), 'bench');
INSERT INTO raw_http (source, run_id, fetched_at, coin_id, source_updated_at, payload)
SELECT CASE WHEN i % 2 = 0 THEN 'coingecko' ELSE 'coinpaprika' END, 1,
       date_trunc('minute', now()) - (i / {COINS}) * interval '5 minutes' + interval '1 minute',
       'coin-' || (i % {COINS}),
       date_trunc('minute', now()) - (i / {COINS}) * interval '5 minutes',
       (SELECT jsonb_object_agg('field_' || k, round((random() * 1e9)::numeric, 4))
          FROM generate_series(1, 40 + (i - i)) AS k)
FROM generate_series(0, $1::int - 1) AS i;
INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, market_cap, volume_24h,
                                 source, observed_at, run_id, raw_id)
SELECT coin_id, 'Coin ' || coin_id, upper(coin_id), random() * 1000, random() * 1e9,
       random() * 1e7, source, source_updated_at, 1, id
FROM raw_http ORDER BY id;
ANALYZE;
"""

FLOOR = """
BEGIN;
CREATE TABLE floor_unified AS SELECT * FROM unified_crypto_data;
CREATE TABLE floor_raw AS SELECT * FROM raw_http;
ALTER TABLE floor_unified ADD PRIMARY KEY (id, observed_at);
ALTER TABLE floor_unified ADD UNIQUE (source, coin_id, observed_at);
CREATE INDEX ON floor_unified (coin_id, observed_at DESC, id DESC);
CREATE INDEX ON floor_unified (coin_id, id);
CREATE INDEX ON floor_unified (lower(symbol), id);
CREATE INDEX ON floor_unified (observed_at DESC, id DESC);
ALTER TABLE floor_raw ADD PRIMARY KEY (id, source_updated_at);
ALTER TABLE floor_raw ADD UNIQUE (source, coin_id, source_updated_at);
ROLLBACK;
"""


def _directory(work: Path, name: str, through: int) -> Path:
    directory = work / name
    directory.mkdir(exist_ok=True)
    for migration in load_migrations():
        if migration.version <= through:
            (directory / migration.filename).write_text(migration.sql)
    return directory


async def one_round(server_url: str, work: Path, rows: int, n: int) -> tuple[float, float, int]:
    """(upgrade seconds, floor seconds, bytes before) of one round."""
    url = await ensure_database(server_url, f"upgrade_{n}")
    conn = await asyncpg.connect(url, command_timeout=3600)
    try:
        await migrate(conn, _directory(work, "before", PARTITIONED - 1))
        await conn.execute("SET maintenance_work_mem = '256MB'")
        await conn.execute(SEED.replace("$1::int", str(rows)))
        size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        await conn.execute("CHECKPOINT")
        started = time.perf_counter()
        await conn.execute(FLOOR)
        floor = time.perf_counter() - started
        await conn.execute("CHECKPOINT")
        started = time.perf_counter()
        applied = await migrate(conn, _directory(work, "through", PARTITIONED))
        upgrade = time.perf_counter() - started
        assert applied == ["0011_partitioned_storage.sql"], applied
        count = await conn.fetchval("SELECT count(*) FROM unified_crypto_data")
        assert count == rows, count
    finally:
        await conn.close()
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE "upgrade_{n}"')
    finally:
        await admin.close()
    return upgrade, floor, size


async def main(rows: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cryptoetl-upgrade-") as tmp:
        work = Path(tmp)
        server = EmbeddedPostgres(work / "pg")
        server_url = await asyncio.to_thread(server.start)
        try:
            results = [await one_round(server_url, work, rows, n) for n in range(rounds)]
        finally:
            await asyncio.to_thread(server.stop)
    upgrades = [r[0] for r in results]
    floors = [r[1] for r in results]
    ratios = [r[0] / r[1] for r in results]
    print(f"rows: {rows:,} unified + {rows:,} raw_http; database {results[0][2] / 1e9:.2f} GB")
    print("| what | median s | runs |")
    print("|---|---:|---|")
    print(
        f"| migrate 0011 (upgrade in place) | {statistics.median(upgrades):.1f} | "
        + ", ".join(f"{u:.1f}" for u in upgrades)
        + " |"
    )
    print(
        f"| rewrite floor (CREATE TABLE AS + same indexes) | {statistics.median(floors):.1f} | "
        + ", ".join(f"{f:.1f}" for f in floors)
        + " |"
    )
    print(f"upgrade / floor: {statistics.median(ratios):.2f} (median of per-round ratios)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.rounds))
