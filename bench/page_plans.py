"""Page-plan bench: what planning costs `/data` page 1 as the partitioned history grows.

A prepared statement with parameters is planned afresh for each of a connection's first five
runs (a "custom" plan), then PostgreSQL may keep one "generic" plan; a statement without
parameters is planned once per connection. Planning a query over the partitioned history looks
up every partition's and index's size on disk, so a custom plan costs more as the data grows.
`/data` page 1 has no parameters (its page size is written as literal numbers); before that,
its page size was two parameters and each new connection planned it five times.

On one embedded PostgreSQL (the service's settings), a year of hourly history of one coin per
source is inserted first (as a backfill brings it: bench/scale.py's, which gives the history
its monthly and yearly partitions), then the default coins' rows (3,472 coins every 5
minutes) with SQL, day by day; at day 1 and at day `--days` a fresh
app in-process (uncached, `API_CACHE_MB=0`) answers page 1 `--requests` times, in turn with:

- the page statement as shipped (no parameters);
- the same statement with the page size as two parameters (as before).

For each it reports the median of a new connection's first five requests and of the rest.

    python bench/page_plans.py [--days 30] [--requests 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cryptoetl.app import create_app  # noqa: E402
from cryptoetl.db import data, partitions  # noqa: E402
from cryptoetl.db.data_query import DataQuery  # noqa: E402
from cryptoetl.db.embedded import EmbeddedPostgres, server_parameters  # noqa: E402
from cryptoetl.db.migrate import migrate  # noqa: E402
from cryptoetl.log import configure_logging  # noqa: E402
from cryptoetl.sources import load_settings  # noqa: E402

# a day of the default coins (bench/scale.py's), in time order as the loader writes them
_INSERT_DAY = """
INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, market_cap, volume_24h,
                                 observed_at, source, run_id)
SELECT CASE WHEN s.source = 'coingecko' THEN 'coin-' || n ELSE 'c' || n || '-coin-' || n END,
       'Coin ' || n, 'C' || n, 1.0 + n + ((k * 7919 + n) % 1000) / 1000.0,
       (1.0 + n) * 1e7, (1.0 + n) * 1e5,
       $1::timestamptz + k * interval '5 minutes' + (n % 60) * interval '1 second',
       s.source, 0
FROM generate_series(0, 287) AS k
CROSS JOIN (VALUES ('coingecko', 1000), ('coinpaprika', 2472)) AS s(source, coins)
CROSS JOIN LATERAL generate_series(0, s.coins - 1) AS n
ORDER BY k, s.source, n
"""

_INSERT_YEAR = """
INSERT INTO unified_crypto_data (coin_id, price_usd, observed_at, source, run_id)
SELECT s.coin_id, 8.5, $1::timestamptz - h * interval '1 hour', s.source, 0
FROM generate_series(1, 365 * 24) AS h
CROSS JOIN (VALUES ('coingecko', 'coin-7'), ('coinpaprika', 'c7-coin-7')) AS s(source, coin_id)
ORDER BY h DESC, s.source
"""

Statement = Callable[..., tuple[str, list[Any]]]
SHIPPED: Statement = data.page_statement


def with_parameters(query: DataQuery, *, with_count: bool) -> tuple[str, list[Any]]:
    """The shipped page statement with its page size turned back into two parameters."""
    sql, args = SHIPPED(query, with_count=with_count)
    size, last = query.page_size, query.page_size - 1
    for n, (literal, param) in enumerate(
        (
            (f"LIMIT {size}) AS p", "LIMIT ${}) AS p"),
            (f"OFFSET {last} LIMIT 1", "OFFSET ${} LIMIT 1"),
        ),
        start=len(args) + 1,
    ):
        if literal not in sql:  # both places must be found, or the comparison is void
            raise RuntimeError("the page statement changed shape; update with_parameters")
        sql = sql.replace(literal, param.format(n))
    return sql, [*args, size, last]


@contextmanager
def statement(build: Statement) -> Iterator[None]:
    data.page_statement = build  # fetch_page looks it up at each call
    try:
        yield
    finally:
        data.page_statement = SHIPPED


async def page_one(url: str, requests: int) -> list[float]:
    """ms of each of `requests` page-1 requests to a fresh app (so a new connection)."""
    settings = load_settings(
        env_file=None,
        database_url=url,
        cryptoetl_data_dir=Path(tempfile.gettempdir()),
        api_cache_mb=0,
        log_level="WARNING",
        log_format="json",
    )
    app = create_app(settings, database_url=url)
    times = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await client.get("/api/v1/health")  # the pool's first connection, not timed
            for _ in range(requests):
                started = time.perf_counter()
                response = await client.get("/api/v1/data")
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(response.text[:200])
    return times


async def measure(url: str, requests: int, rounds: int = 3) -> dict[str, tuple[float, float]]:
    """(median of the first five, median of the rest) per statement, over `rounds` apps each."""
    times: dict[str, list[list[float]]] = {"shipped": [], "parameters": []}
    for _ in range(rounds):
        for name, build in (("shipped", SHIPPED), ("parameters", with_parameters)):
            with statement(build):
                times[name].append(await page_one(url, requests))
    return {
        name: (
            statistics.median(t for run in runs for t in run[:5]),
            statistics.median(t for run in runs for t in run[5:]),
        )
        for name, runs in times.items()
    }


async def load_days(conn: asyncpg.Connection[Any], lo: datetime, hi: datetime) -> None:
    day = lo
    while day < hi:
        await partitions.ensure(conn, partitions.UNIFIED, day, day + timedelta(days=1))
        await conn.execute(_INSERT_DAY, day)
        day += timedelta(days=1)


async def run(args: argparse.Namespace) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=args.days)
    with tempfile.TemporaryDirectory(prefix="cryptoetl-page-plans-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - the embedded server runs as its own user
        server = EmbeddedPostgres(Path(tmp), server_parameters(args.shared_buffers_mb))
        url = await asyncio.to_thread(server.start)
        try:
            conn = await asyncpg.connect(url)
            try:
                await migrate(conn)
                year = start - timedelta(days=365)
                await partitions.ensure(conn, partitions.UNIFIED, year, start)
                await conn.execute(_INSERT_YEAR, start)
                await load_days(conn, start, start + timedelta(days=1))
                await conn.execute("VACUUM ANALYZE")
                results = {1: await measure(url, args.requests)}
                await load_days(conn, start + timedelta(days=1), now)
                await conn.execute("VACUUM ANALYZE")
                results[args.days] = await measure(url, args.requests)
                rows = await conn.fetchval("SELECT count(*) FROM unified_crypto_data")
                parts = len(await partitions.list_partitions(conn, partitions.UNIFIED))
            finally:
                await conn.close()
        finally:
            await asyncio.to_thread(server.stop)
    print(f"{rows:,} observations in {parts} partitions at day {args.days}; 3 fresh apps x")
    print(f"{args.requests} page-1 requests per statement and day (median ms)\n")
    print(f"| page 1 statement | requests | day 1 | day {args.days} | ratio |")
    print("|---|---|---:|---:|---:|")
    for name in ("shipped", "parameters"):
        for n, label in ((0, "first 5 of a connection"), (1, "the rest")):
            first, last = results[1][name][n], results[args.days][name][n]
            print(f"| {name} | {label} | {first:.2f} | {last:.2f} | {last / first:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--shared-buffers-mb", type=int, default=512)
    args = parser.parse_args()
    if args.days < 2 or args.requests < 6:
        parser.error("--days must be at least 2 and --requests at least 6")
    configure_logging("WARNING", "json")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
