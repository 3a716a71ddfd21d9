"""What a covering index for asset history would buy and cost (it is NOT shipped).

    .venv/bin/python bench/assets_index_cost.py [--rows 200000] [--rounds 3]

The history query reads an asset's observations through the unique index
`(source, coin_id, observed_at)` and then the table's heap pages, one page per observation
(rows are written in time order, so one coin's rows are spread over the whole table). An index
`(source, coin_id, observed_at) INCLUDE (price_usd, market_cap, volume_24h)` would let it read
the index alone. This bench measures, on one server, a database as shipped ("plain") against
one with that index ("covered"), interleaved:

1. the loader (`cryptoetl.db.load.upsert_unified`, the pipeline's own path) inserting `--rows`
   new rows in batches of 250 (a CoinGecko page) and of 5,000, then re-loading them with every
   price changed (every row rewritten), one transaction per batch;
2. a 1,000,000-row bulk load (`bench/assets.py`'s generator) into each;
3. the history query of `bench/assets.py` (a year of hourly buckets, 3 sources) on each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import assets as assets_bench  # noqa: E402
from cryptoetl.assets.sync import sync_assets  # noqa: E402
from cryptoetl.db import assets as asset_queries  # noqa: E402
from cryptoetl.db import load  # noqa: E402
from cryptoetl.db.embedded import EmbeddedPostgres  # noqa: E402
from cryptoetl.db.migrate import migrate  # noqa: E402
from cryptoetl.db.pool import open_pool  # noqa: E402
from cryptoetl.db.server import ensure_database  # noqa: E402

COVERING = (
    "CREATE INDEX unified_asset_cover ON unified_crypto_data (source, coin_id, observed_at)"
    " INCLUDE (price_usd, market_cap, volume_24h)"
)
COINS = 1000


def stage_rows(rows: int, bump: float) -> list[load.StageRow]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    out: list[load.StageRow] = []
    for step in range(rows // COINS):
        at = start + timedelta(minutes=5 * step)
        for c in range(1, COINS + 1):
            price = 1000.0 / c + step * 0.01 + bump
            out.append((f"coin-{c:04d}", f"Coin {c}", f"C{c}", price, 1e9 / c, 1e7 / c, at, None))
    return out


async def prepare(server_url: str, name: str, covered: bool) -> str:
    url = await ensure_database(server_url, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        if covered:
            await conn.execute(COVERING)
    finally:
        await conn.close()
    return url


async def loader_rate(url: str, rows: list[load.StageRow], batch: int, *, fresh: bool) -> float:
    """Rows/s through the loader; `fresh` empties the table first."""
    conn = await asyncpg.connect(url)
    try:
        if fresh:
            await conn.execute("TRUNCATE unified_crypto_data")
            await conn.execute("VACUUM unified_crypto_data")
        started = time.perf_counter()
        for first in range(0, len(rows), batch):
            async with conn.transaction():
                await load.ensure_staging(conn)
                await load.upsert_unified(conn, "coingecko", 1, rows[first : first + batch])
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.close()


async def bulk_rate(url: str) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE unified_crypto_data")
        await conn.execute("TRUNCATE asset_mappings, asset_pins, assets")
        started = time.perf_counter()
        for first in range(0, assets_bench.FILLER_STEPS, 200):
            last = min(first + 200, assets_bench.FILLER_STEPS) - 1
            await conn.execute(
                assets_bench._INSERT,
                first,
                last,
                assets_bench.START,
                assets_bench.HOURS,
                assets_bench.FILLER_COINS,
            )
        rate = assets_bench.ROWS / (time.perf_counter() - started)
        await conn.execute("VACUUM ANALYZE unified_crypto_data")
    finally:
        await conn.close()
    async with open_pool(url, max_size=2) as pool:
        await sync_assets(pool)
    return rate


async def history_ms(url: str, reps: int) -> list[float]:
    times = []
    async with open_pool(url, max_size=2) as pool, pool.acquire() as conn:
        for _ in range(reps):
            started = time.perf_counter()
            result = await asset_queries.asset_history(
                conn, assets_bench.ASSET, since=assets_bench.START, until=assets_bench.YEAR_END
            )
            times.append((time.perf_counter() - started) * 1000)
            assert len(result.buckets) == assets_bench.HOURS
    return times


async def main(rows: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cryptoetl-assets-index-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        server_url = await asyncio.to_thread(server.start)
        try:
            urls = {
                "plain": await prepare(server_url, "plain", covered=False),
                "covered": await prepare(server_url, "covered", covered=True),
            }
            new_rows, changed_rows = stage_rows(rows, 0.0), stage_rows(rows, 0.5)
            print(f"loader, {rows:,} rows, medians of {rounds} interleaved rounds\n")
            print("| what | batch | plain rows/s | covered rows/s | covered / plain |")
            print("|---|---:|---:|---:|---:|")
            for batch in (250, 5000):
                first: dict[str, list[float]] = {"plain": [], "covered": []}
                again: dict[str, list[float]] = {"plain": [], "covered": []}
                for round_no in range(rounds):
                    order = ["plain", "covered"] if round_no % 2 == 0 else ["covered", "plain"]
                    for label in order:
                        url = urls[label]
                        first[label].append(await loader_rate(url, new_rows, batch, fresh=True))
                        again[label].append(
                            await loader_rate(url, changed_rows, batch, fresh=False)
                        )
                for what, figures in (("first load", first), ("every row changed", again)):
                    p = statistics.median(figures["plain"])
                    c = statistics.median(figures["covered"])
                    print(f"| {what} | {batch:,} | {p:,.0f} | {c:,.0f} | {c / p:.2f} |")
            bulk = {label: await bulk_rate(url) for label, url in urls.items()}
            print(
                f"\nbulk load of 1,000,000 rows (generate_series, 200 hours per statement): "
                f"plain {bulk['plain']:,.0f} rows/s, covered {bulk['covered']:,.0f} rows/s "
                f"({bulk['covered'] / bulk['plain']:.2f})"
            )
            queries: dict[str, list[float]] = {"plain": [], "covered": []}
            for round_no in range(rounds):
                order = ["plain", "covered"] if round_no % 2 == 0 else ["covered", "plain"]
                for label in order:
                    queries[label].append(statistics.median(await history_ms(urls[label], 15)))
            p, c = statistics.median(queries["plain"]), statistics.median(queries["covered"])
            print(
                f"history, a year of hourly buckets (query function, median ms): plain {p:.1f}, "
                f"covered {c:.1f} ({c / p:.2f})"
            )
        finally:
            await asyncio.to_thread(server.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.rounds))
