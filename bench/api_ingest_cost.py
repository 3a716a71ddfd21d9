"""What the API's migration (0004) costs the loads: inserts into unified_crypto_data with and
without it, on the same server, interleaved.

    .venv/bin/python bench/api_ingest_cost.py [--rows 200000] [--rounds 3]

0004 adds nothing to unified_crypto_data itself; it adds a statement trigger on source_stats
(the NOTIFY that keeps the API's cached data versions current) and an index on etl_runs. Loads
pay the trigger once per statement that changes source_stats, so the cost shows most with small
statements: the bench inserts in statements of 250 rows (a CoinGecko page) and of 5,000 rows,
into a database with every migration before 0004 applied, 0001 and 0002 ("before"), and one
migrated through 0004 ("after").
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

INSERT = """
INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, market_cap, volume_24h,
    source, observed_at, run_id)
SELECT 'coin-' || c, 'Coin ' || c, 'C' || c, c * 1.5, c * 1000.0, c * 10.0, 'coingecko',
       timestamptz '2025-01-01' + $1::int * interval '5 minutes', 1
FROM generate_series(1, $2::int) AS c
"""


async def prepare(server_url: str, name: str, through: int, work: Path) -> str:
    url = await ensure_database(server_url, name)
    directory = work / name
    directory.mkdir()
    for migration in load_migrations():
        if migration.version <= through:
            (directory / migration.filename).write_text(migration.sql)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, directory)
        await conn.execute("TRUNCATE unified_crypto_data")
    finally:
        await conn.close()
    return url


async def load(url: str, rows: int, per_statement: int) -> float:
    """Rows per second inserting `rows` in statements of `per_statement`, one commit each."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE unified_crypto_data")
        await conn.execute("VACUUM unified_crypto_data")
        started = time.perf_counter()
        for step in range(rows // per_statement):
            await conn.execute(INSERT, step, per_statement)
        return rows / (time.perf_counter() - started)
    finally:
        await conn.close()


async def main(rows: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cryptoetl-ingest-") as tmp:
        work = Path(tmp)
        server = EmbeddedPostgres(work / "pg")
        server_url = await asyncio.to_thread(server.start)
        try:
            before = await prepare(server_url, "before_0004", 2, work)
            after = await prepare(server_url, "with_0004", 4, work)
            print("| statement size | before 0004 rows/s | with 0004 rows/s | ratio |")
            print("|---:|---:|---:|---:|")
            for per_statement in (250, 5000):
                figures: dict[str, list[float]] = {"before": [], "after": []}
                for round_no in range(rounds):
                    order = ("before", "after") if round_no % 2 == 0 else ("after", "before")
                    for label in order:
                        url = before if label == "before" else after
                        figures[label].append(await load(url, rows, per_statement))
                b = statistics.median(figures["before"])
                a = statistics.median(figures["after"])
                print(f"| {per_statement:,} | {b:,.0f} | {a:,.0f} | {a / b:.2f} |")
        finally:
            await asyncio.to_thread(server.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.rounds))
