"""Backfill benchmark: a year of hourly CoinGecko history for N coins, end to end, against its
limits.

    .venv/bin/python bench/backfill.py [--coins 20] [--days 365] [--reps 3]

Starts its own embedded PostgreSQL in a temporary directory (with DATABASE_URL set, a database
of its own on that server, dropped afterwards) and the loopback upstream of the tests
(`tests/support/upstream.py`, history served by `tests/support/upstream_history.py`) on
127.0.0.1, with no request budget (the bench measures the machinery, not a provider's rate).
Each repetition starts from empty tables and measures:

- fetch only: the same requests (`history.fetch`, JSON parsed into records) with no database:
  what the upstream and the HTTP client cost;
- raw COPY: as many synthetic unified rows, in batches of one chunk's size, COPYed into an
  identical empty table (bench/ingest.py's `raw_copy`): the database's physical limit;
- backfill: `Backfill.run` (fetch, transform, raw records as pages, the unified upsert, the
  cursor, one transaction per chunk) of every coin for `--days` days;
- refetch: the same range again with the cursors deleted, so every chunk is fetched and every
  row is unchanged; and a re-run with the cursors kept (nothing to fetch).

It prints rows/s and the ratio of the backfill to the raw COPY and to the sum of its two
floors (fetch only + raw COPY), medians over the repetitions. Results: docs/backfill.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from tests.support.upstream import Upstream  # noqa: E402

from cryptoetl.db.migrate import migrate  # noqa: E402
from cryptoetl.db.pool import open_pool  # noqa: E402
from cryptoetl.etl.backfill import Backfill  # noqa: E402
from cryptoetl.log import configure_logging  # noqa: E402
from cryptoetl.models import BackfillRequest, RunStatus  # noqa: E402
from cryptoetl.sources import load_settings  # noqa: E402
from cryptoetl.sources.base import SourceContext  # noqa: E402
from cryptoetl.sources.history_registry import HISTORY, open_history  # noqa: E402
from ingest import raw_copy, synthetic, with_server  # noqa: E402

TABLES = (
    "unified_crypto_data, raw_http, raw_http_pages, backfill_cursors, backfill_runs, etl_runs,"
    " checkpoints"
)


def settings_for(upstream: Upstream, url: str) -> Any:
    return load_settings(
        env_file=None,
        database_url=url,
        coingecko_base_url=upstream.coingecko_url,
        coingecko_requests_per_minute=100_000,
        rate_limit_delay=0,
        log_level="WARNING",
    )


async def fetch_only(settings: Any, coins: list[str], since: datetime, until: datetime) -> int:
    chunks = HISTORY["coingecko"].chunks(since, until, datetime.now(UTC))
    points = 0
    async with open_history("coingecko", SourceContext(settings)) as history:
        for coin in coins:
            for chunk in chunks:
                batch = await history.fetch(coin, chunk, None)
                points += len(batch.items)
    return points


async def one_rep(
    url: str, upstream: Upstream, coins: list[str], since: datetime, until: datetime
) -> dict[str, float]:
    settings = settings_for(upstream, url)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    points = await fetch_only(settings, coins, since, until)
    seconds["fetch only (no database)"] = time.perf_counter() - started

    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    try:
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        await conn.execute("CHECKPOINT")
        rows = synthetic(0, points)
        seconds["raw COPY (the limit)"] = await raw_copy(conn, rows, points // len(coins) // 5)
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()

    request = BackfillRequest("coingecko", coins=coins, since=since, until=until)
    async with open_pool(url, max_size=4) as pool:
        backfill = Backfill(settings, pool)
        started = time.perf_counter()
        outcome = await backfill.run(request)
        seconds["backfill (first load)"] = time.perf_counter() - started
        assert outcome.status is RunStatus.SUCCESS, outcome.error
        assert outcome.counts.inserted == points, (outcome.counts, points)
        started = time.perf_counter()
        again = await backfill.run(request)
        seconds["re-run, cursors kept (no request)"] = time.perf_counter() - started
        assert again.counts.fetched == 0
        await pool.execute("DELETE FROM backfill_cursors")
        started = time.perf_counter()
        refetch = await backfill.run(request)
        seconds["refetch, every row unchanged"] = time.perf_counter() - started
        assert refetch.counts.unchanged == points, refetch.counts
    seconds["points"] = points
    return seconds


async def bench(url: str, coin_count: int, days: int, reps: int) -> None:
    configure_logging("WARNING", "console", [])
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    upstream = await Upstream().start()
    upstream.history_limit_days["coingecko"] = None
    coins = [record["id"] for record in upstream.page_1[:coin_count]]
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    since = until - timedelta(days=days)
    results: list[dict[str, float]] = []
    try:
        for rep in range(reps):
            results.append(await one_rep(url, upstream, coins, since, until))
            points = results[-1]["points"]
            line = ", ".join(
                f"{k} {points / v:,.0f}/s" for k, v in results[-1].items() if k != "points"
            )
            print(f"rep {rep + 1}: {line}", file=sys.stderr, flush=True)
    finally:
        await upstream.close()
    report(results, coin_count, days, reps, str(version))


def report(
    results: list[dict[str, float]], coin_count: int, days: int, reps: int, version: str
) -> None:
    points = int(results[0]["points"])
    start = datetime(2024, 1, 1, tzinfo=UTC)
    per_coin = len(HISTORY["coingecko"].chunks(start, start + timedelta(days=days), start))
    print(
        f"{coin_count} coins x {days} days hourly = {points:,} points, "
        f"{per_coin * coin_count} requests; median of {reps}; PostgreSQL {version}"
    )
    print("| what | rows/s (median) | backfill / this (median of per-run ratios) | runs |")
    print("|---|---:|---:|---|")
    for name in results[0]:
        if name == "points":
            continue
        rates = [r["points"] / r[name] for r in results]
        ratios = [r[name] / r["backfill (first load)"] for r in results]
        runs = ", ".join(f"{rate:,.0f}" for rate in rates)
        print(
            f"| {name} | {statistics.median(rates):,.0f} | {statistics.median(ratios):.2f} "
            f"| {runs} |"
        )
    floors = [
        (r["fetch only (no database)"] + r["raw COPY (the limit)"]) / r["backfill (first load)"]
        for r in results
    ]
    print(
        "backfill against fetch only + raw COPY (the two floors, one after the other): "
        f"{statistics.median(floors):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--coins", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(with_server(lambda url: bench(url, args.coins, args.days, args.reps)))


if __name__ == "__main__":
    main()
