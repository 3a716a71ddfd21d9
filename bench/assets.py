"""Assets bench: one asset's year of hourly history among 1,000,000 unified rows.

    .venv/bin/python bench/assets.py [--reps 25] [--rounds 3]

What it does, all in one run (the machine is shared and noisy, so only figures from the same
run are compared):
1. starts an embedded PostgreSQL in `bench/.work/assets-pg/` (kept between runs; the rows are
   reloaded only when their number differs) and loads exactly 1,000,000 rows in time order, as
   the ETL writes them: the bench asset `Benchcoin` / `BNCH` at three sources (coingecko
   `benchcoin`, coinpaprika `bnch-benchcoin`, csv `benchcoin`), one observation an hour for a
   year (3 x 8,760 = 26,280 rows), among 55 other coins at two sources over the same hours
   (110 x 8,852 = 973,720 rows); then VACUUM ANALYZE and one `cryptoetl.assets.sync` (timed:
   the mapping of 113 coins over 1,000,000 rows, from nothing);
2. times, in turns, round after round (median and p95 of `--reps` calls per round, the median
   of the rounds reported):
   - `db.assets.asset_history` for the year, hourly, sources combined (8,760 buckets from
     26,280 observations) and for one source (8,760 from 8,760), and daily combined;
   - the same year over HTTP from a real `cryptoetl serve` (JSON of 8,760 buckets);
   - `GET /api/v1/assets/benchcoin` and `GET /api/v1/assets?symbol=bnch`;
   - the pipeline's mapping step when a run brought no new coin (`sync_assets` for one source);
3. prints the plan of the history query (EXPLAIN ANALYZE, BUFFERS) to show which index serves
   it: the unique index `(source, coin_id, observed_at)`; nothing is added to the table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
BENCH_DB = "cryptoetl_bench_assets"
ROWS = 1_000_000
HOURS = 8760  # the bench asset's year
FILLER_COINS = 55
FILLER_STEPS = 8852  # 110 pairs x 8,852 + 3 x 8,760 = 1,000,000
START = datetime(2024, 1, 1, tzinfo=UTC)
YEAR_END = START + timedelta(hours=HOURS)
ASSET = "benchcoin"

sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from api import start_serve as api_serve  # noqa: E402
from api import stop  # noqa: E402
from cryptoetl.assets.sync import sync_assets  # noqa: E402
from cryptoetl.db import assets as asset_queries  # noqa: E402
from cryptoetl.db import partitions  # noqa: E402
from cryptoetl.db.embedded import EmbeddedPostgres  # noqa: E402
from cryptoetl.db.migrate import migrate  # noqa: E402
from cryptoetl.db.pool import Pool, open_pool  # noqa: E402
from cryptoetl.db.server import ensure_database  # noqa: E402

# -- data ---------------------------------------------------------------------------------------
_INSERT = """
INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, market_cap, volume_24h,
    source, observed_at, ingested_at, run_id)
SELECT p.coin_id, p.name, p.symbol,
       round((p.base + 10 * sin(step / 24.0 + p.n))::numeric, 6)::float8,
       CASE WHEN (step + p.n) % 11 = 0 THEN NULL ELSE 1e9 + step * 1000 + p.n END,
       1e7 + step * 10 + p.n,
       p.source,
       $3::timestamptz + step * interval '1 hour',
       $3::timestamptz + step * interval '1 hour' + interval '7 s',
       step + 1
FROM generate_series($1::int, $2::int) AS step
CROSS JOIN (
    SELECT * FROM (VALUES
        ('coingecko', 'benchcoin', 'Benchcoin', 'bnch', 100.0, 0),
        ('coinpaprika', 'bnch-benchcoin', 'Benchcoin', 'BNCH', 100.5, 1),
        ('csv', 'benchcoin', 'Benchcoin', 'BNCH', 99.5, 2)
    ) AS t(source, coin_id, name, symbol, base, n)
    WHERE $1::int < $4::int
    UNION ALL
    SELECT s.source, 'coin-' || c, 'Coin ' || c, 'C' || c, 1000.0 / c, c
    FROM unnest(ARRAY['coingecko', 'coinpaprika']) AS s(source)
    CROSS JOIN generate_series(1, $5::int) AS c
) AS p
WHERE step < $4::int OR p.coin_id LIKE 'coin-%'
ORDER BY step, p.source, p.coin_id
"""


async def load(url: str) -> float | None:
    """Load the rows (unless already there) and map them; the mapping's seconds, or None."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        have = await conn.fetchval("SELECT coalesce(sum(row_count), 0) FROM source_stats")
        if have == ROWS:
            print(f"{ROWS:,} rows already loaded", file=sys.stderr)
            return None
        await conn.execute("TRUNCATE unified_crypto_data")
        await conn.execute("TRUNCATE asset_mappings, asset_pins, assets")
        for table in (partitions.UNIFIED, partitions.HOURLY):  # as the loader makes them
            await partitions.ensure(conn, table, START, YEAR_END)
        started = time.perf_counter()
        chunk = 200
        for first in range(0, FILLER_STEPS, chunk):
            last = min(first + chunk, FILLER_STEPS) - 1
            await conn.execute(_INSERT, first, last, START, HOURS, FILLER_COINS)
        loaded = int(await conn.fetchval("SELECT sum(row_count) FROM source_stats"))
        assert loaded == ROWS, loaded
        print(f"loaded {loaded:,} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        await conn.execute("VACUUM ANALYZE unified_crypto_data, unified_hourly")
    finally:
        await conn.close()
    async with open_pool(url, max_size=2) as pool:
        started = time.perf_counter()
        report = await sync_assets(pool)
        seconds = time.perf_counter() - started
    print(f"mapped {report.mapped} coins in {seconds:.2f} s", file=sys.stderr)
    return seconds


# -- processes ----------------------------------------------------------------------------------
def start_serve(database_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The API over the bench data, with no scheduled run writing to it."""
    return api_serve(
        database_url,
        log,
        LOG_LEVEL="WARNING",
        ETL_INTERVAL_SECONDS=str(7 * 24 * 3600),
    )


# -- timing -------------------------------------------------------------------------------------
Scenario = Callable[[], Awaitable[Any]]


async def timed(call: Scenario, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def scenarios(pool: Pool, http: httpx.AsyncClient, base: str) -> dict[str, Scenario]:
    year = {"since": START, "until": YEAR_END}

    async def history(**kwargs: Any) -> None:
        async with pool.acquire() as conn:
            result = await asset_queries.asset_history(conn, ASSET, **{**year, **kwargs})
        expected = 365 if kwargs.get("interval") == "1d" else HOURS
        assert len(result.buckets) == expected, len(result.buckets)

    async def get(path: str, **params: Any) -> None:
        response = await http.get(f"{base}{path}", params=params)
        assert response.status_code == 200, response.text

    async def mapping_step() -> None:
        report = await sync_assets(pool, sources=["coingecko"])
        assert not report.decided

    window = {"since": START.isoformat(), "until": YEAR_END.isoformat()}
    return {
        "history 1h combined, query function (8,760 buckets)": lambda: history(interval="1h"),
        "history 1h one source, query function": lambda: history(interval="1h", source="coingecko"),
        "history 1d combined, query function (365 buckets)": lambda: history(interval="1d"),
        "history 1h combined, HTTP (8,760 buckets)": lambda: get(
            f"/api/v1/assets/{ASSET}/history", interval="1h", **window
        ),
        "asset detail, HTTP": lambda: get(f"/api/v1/assets/{ASSET}"),
        "search symbol=bnch, HTTP": lambda: get("/api/v1/assets", symbol="bnch"),
        "mapping step, no new coin (one source)": mapping_step,
    }


async def explain(pool: Pool) -> str:
    async with pool.acquire() as conn:
        statement, args = asset_queries.history_statement(ASSET, since=START, until=YEAR_END)
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, *args)
    return "\n".join(row[0] for row in rows)


async def measure(url: str, base: str, reps: int, rounds: int) -> dict[str, list[list[float]]]:
    async with open_pool(url, max_size=4) as pool, httpx.AsyncClient(timeout=60) as http:
        cases = scenarios(pool, http, base)
        for call in cases.values():  # warm caches and plans
            await timed(call, 3)
        runs: dict[str, list[list[float]]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, call in cases.items():
                runs[name].append(await timed(call, reps))
        print(await explain(pool), file=sys.stderr)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=25, help="calls per scenario and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(WORK / "assets-pg")
    serve: subprocess.Popen[bytes] | None = None
    try:
        url = asyncio.run(ensure_database(server.start(), BENCH_DB))
        mapped_in = asyncio.run(load(url))
        serve, base = start_serve(url, WORK / "serve-assets.log")
        runs = asyncio.run(measure(url, base, args.reps, args.rounds))
    finally:
        if serve is not None:
            stop(serve)
        server.stop()
    print(f"{ROWS:,} rows; medians of {args.rounds} rounds of {args.reps} calls each")
    if mapped_in is not None:
        print(f"first mapping of the 113 coins (sync_assets from nothing): {mapped_in:.2f} s")
    print()
    print("| scenario | median ms | p95 ms | each round's median ms |")
    print("|---|---:|---:|---|")
    for name, rounds in runs.items():
        medians = [statistics.median(r) for r in rounds]
        p95s = [percentile(r, 0.95) for r in rounds]
        each = ", ".join(f"{m:.1f}" for m in medians)
        print(
            f"| {name} | {statistics.median(medians):.1f} | {statistics.median(p95s):.1f} "
            f"| {each} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
