"""Asset history bench: an asset's hourly history as its history grows from 1 day to 30.

`bench/scale.py` asks for "a year of hourly history" of one asset at day 1 and day 30. Without
history before day 1 that answer would grow with the hours that exist (24 buckets at day 1,
720 at day 30), mixing how the query scales with the stored history and what the answer's
size costs. This bench keeps them apart, on one embedded PostgreSQL, through the real app in-process
(uncached, `API_CACHE_MB=0`):

- the asset: two mapped coins (one per source) observed every 5 minutes, plus `--others`
  coins per source beside it, inserted with SQL (the rollup triggers keep `unified_hourly`);
- before day 1, a year of hourly history of the asset's two coins (as a backfill brings it),
  so a year of hourly history is 8,760 buckets at day 1 and at the last day alike;
- at day 1 and again at day `--days`: the median latency of
  - a year of hourly history (what scale.py asks), and the same query in SQL alone;
  - the last 24 hours hourly (the same answer at every size: how the query scales);
  - `GET /api/v1/assets/{id}` (the framework and lookup floor, the same-run reference);
- and the cost per bucket of the year's answer.

    python bench/asset_history.py [--days 30] [--others 50] [--repeat 31]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cryptoetl.app import create_app  # noqa: E402
from cryptoetl.db import assets as asset_queries  # noqa: E402
from cryptoetl.db import partitions  # noqa: E402
from cryptoetl.db.embedded import EmbeddedPostgres  # noqa: E402
from cryptoetl.db.migrate import migrate  # noqa: E402
from cryptoetl.log import configure_logging  # noqa: E402
from cryptoetl.sources import load_settings  # noqa: E402

ASSET = "benchcoin"
COINS = {"coingecko": "benchcoin", "coinpaprika": "bnch-benchcoin"}

_INSERT_DAY = """
INSERT INTO unified_crypto_data
    (coin_id, name, symbol, price_usd, market_cap, volume_24h, source, observed_at, run_id)
SELECT c.coin_id, c.coin_id, 'c', 100 + 10 * sin(extract(epoch FROM t) / 7200) + c.n,
       1e9 + extract(epoch FROM t), 1e7, $1, t, $2
FROM (SELECT coin_id, row_number() OVER () AS n FROM unnest($3::text[]) AS coin_id) AS c
CROSS JOIN generate_series($4::timestamptz, $5::timestamptz - interval '5 minutes',
                           interval '5 minutes') AS t
"""

_INSERT_HOURLY = """
INSERT INTO unified_crypto_data
    (coin_id, name, symbol, price_usd, market_cap, volume_24h, source, observed_at, run_id)
SELECT $1, $1, 'c', 100 + 10 * sin(extract(epoch FROM t) / 7200), 1e9, 1e7, $2, t, $3
FROM generate_series($4::timestamptz, $5::timestamptz - interval '1 hour', interval '1 hour') AS t
"""


async def seed(conn: asyncpg.Connection, start: datetime, others: int) -> dict[str, int]:
    await conn.execute(
        "INSERT INTO assets (asset_id, symbol, name, origin) VALUES ($1, 'BNCH', 'Bench', 'admin')",
        ASSET,
    )
    runs = {}
    for source, coin in COINS.items():
        runs[source] = await conn.fetchval(
            "INSERT INTO etl_runs (source, trigger, status, finished_at, owner)"
            " VALUES ($1, 'cli', 'success', now(), 'bench') RETURNING id",
            source,
        )
        await conn.execute(
            "INSERT INTO asset_mappings (source, coin_id, asset_id, rule, confidence, method,"
            " reason) VALUES ($1, $2, $3, 'admin', 1, 'admin', 'bench')",
            source,
            coin,
            ASSET,
        )
    # a year of hourly history before `start` (as a backfill brings it): the year's answer is
    # then 8,760 buckets at day 1 and at the last day alike
    await partitions.ensure(conn, "unified_crypto_data", start - timedelta(days=365), start)
    for source, coin in COINS.items():
        await conn.execute(
            _INSERT_HOURLY, coin, source, runs[source], start - timedelta(days=365), start
        )
    await partitions.ensure(conn, "unified_crypto_data", start, start + timedelta(days=1))
    return runs


async def load_days(
    conn: asyncpg.Connection, runs: dict[str, int], others: int, lo: datetime, hi: datetime
) -> None:
    day = lo
    while day < hi:
        end = min(day + timedelta(days=1), hi)
        await partitions.ensure(conn, "unified_crypto_data", day, end)
        for source, coin in COINS.items():
            coins = [coin, *(f"{source[:2]}-other-{n}" for n in range(others))]
            await conn.execute(_INSERT_DAY, source, runs[source], coins, day, end)
        day = end


async def median_ms(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def measure(url: str, now: datetime, repeat: int) -> dict[str, float]:
    settings = load_settings(
        env_file=None,
        database_url=url,
        cryptoetl_data_dir=Path(tempfile.gettempdir()),
        api_cache_mb=0,
        log_level="WARNING",
        log_format="json",
        etl_run_on_startup=False,
    )
    app = create_app(settings, database_url=url)
    year = {"interval": "1h", "since": (now - timedelta(days=365)).isoformat()}
    day = {"interval": "1h", "since": (now - timedelta(days=1)).isoformat()}
    path = f"/api/v1/assets/{ASSET}/history"
    out: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:

            async def get(p: str, params: dict[str, str] | None = None) -> None:
                r = await c.get(p, params=params)
                assert r.status_code == 200, r.text[:300]

            buckets = (await c.get(path, params=year)).json()["buckets"]
            out["buckets"] = len(buckets)
            for _ in range(3):  # warm the plans and the caches
                await get(path, year)
            out["asset (floor)"] = await median_ms(lambda: get(f"/api/v1/assets/{ASSET}"), repeat)
            out["history: a year hourly"] = await median_ms(lambda: get(path, year), repeat)
            out["history: the last day hourly"] = await median_ms(lambda: get(path, day), repeat)
    conn = await asyncpg.connect(url)
    try:
        since = now - timedelta(days=365)
        out["SQL: a year hourly"] = await median_ms(
            lambda: asset_queries.asset_history(conn, ASSET, interval="1h", since=since), repeat
        )
    finally:
        await conn.close()
    return out


async def run(args: argparse.Namespace) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=args.days)
    with tempfile.TemporaryDirectory(prefix="cryptoetl-asset-history-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - the embedded server runs as its own user
        server = EmbeddedPostgres(Path(tmp))
        url = await asyncio.to_thread(server.start)
        try:
            conn = await asyncpg.connect(url)
            try:
                await migrate(conn)
                runs = await seed(conn, start, args.others)
                first = start + timedelta(days=1)
                await load_days(conn, runs, args.others, start, first)
                await conn.execute("ANALYZE")
                results = {1: await measure(url, first, args.repeat)}
                await load_days(conn, runs, args.others, first, now)
                await conn.execute("ANALYZE")
                results[args.days] = await measure(url, now, args.repeat)
                rows = await conn.fetchval("SELECT count(*) FROM unified_crypto_data")
            finally:
                await conn.close()
        finally:
            await asyncio.to_thread(server.stop)
    print(f"{rows:,} observations ({args.others} other coins per source), {args.repeat} repeats")
    print(f"\n| median ms | day 1 | day {args.days} | ratio |\n|---|---:|---:|---:|")
    for name, ms in results[1].items():
        later = results[args.days][name]
        print(f"| {name} | {ms:.2f} | {later:.2f} | {later / ms:.2f} |")
    for day, result in results.items():
        per = (result["history: a year hourly"] - result["asset (floor)"]) / result["buckets"]
        print(f"day {day}: {per * 1000:.1f} us per bucket over the floor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--others", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=31)
    args = parser.parse_args()
    configure_logging("WARNING", "json")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
