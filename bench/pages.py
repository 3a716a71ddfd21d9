"""Page bench: the HTML pages of a real `cryptoetl serve` on 1,000,000 unified rows.

    .venv/bin/python bench/pages.py [--requests 100] [--rounds 3]

1. The assets bench's database (`bench/.work/assets-pg`, loaded by `bench/assets.py`'s
   `load`: 1,000,000 rows, among them the asset `benchcoin` seen hourly for a year by three
   sources, mapped), plus a run history and rejected records at production scale: `RUNS` runs
   (three sources every 5 minutes for a month) and `REJECTED` rejected records spread over the
   last thousand CSV runs. Loaded once, kept between runs.
2. One `cryptoetl serve` (the assets bench's: no scheduled run touches the data).
3. Each page is requested one request at a time (a person opening a page, not a load test):
   `--requests` times per round, the scenarios taking turns, `--rounds` rounds. Latency is
   measured by the client over loopback (connection kept alive), so it includes rendering and
   the transfer of the whole page. `/api/v1/stats` and `/api/v1/rejected` are measured in the
   same rounds as the reference: the JSON answers built from the same queries.

Goal (issue 9): every page answers in under 100 ms. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from api import WORK, stop
from assets import ASSET, BENCH_DB, load, percentile, start_serve

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cryptoetl.db.embedded import EmbeddedPostgres  # noqa: E402
from cryptoetl.db.server import ensure_database  # noqa: E402

RUNS = 27_000  # 3 sources x 9,000 runs, one every 5 minutes: ~31 days of history
REJECTED = 100_000  # 100 per CSV run over the last 1,000 CSV runs
GOAL_MS = 100.0


async def load_history(url: str) -> None:
    """`RUNS` runs and `REJECTED` rejected records, unless they are already there."""
    conn = await asyncpg.connect(url)
    try:
        runs = await conn.fetchval("SELECT count(*) FROM etl_runs")
        rejected = await conn.fetchval("SELECT count(*) FROM rejected_records")
        if (runs, rejected) == (RUNS, REJECTED):
            print(
                f"{RUNS:,} runs and {REJECTED:,} rejected records already loaded", file=sys.stderr
            )
            return
        started = time.perf_counter()
        await conn.execute("TRUNCATE etl_runs, rejected_records CASCADE")
        await conn.execute(
            """
            INSERT INTO etl_runs (source, trigger, status, started_at, finished_at, heartbeat_at,
                owner, fetched, inserted, unchanged, rejected, batches, error)
            SELECT s.source, 'schedule',
                   CASE WHEN s.source = 'csv' AND i > $1::int / 3 - 1000 THEN 'partial'
                        WHEN i % 97 = 0 THEN 'failed' ELSE 'success' END,
                   t, t + interval '2.5 s', t + interval '2.5 s', 'bench:1:x',
                   2000, 10, 1990,
                   CASE WHEN s.source = 'csv' AND i > $1::int / 3 - 1000 THEN 100 ELSE 0 END,
                   1,
                   CASE WHEN s.source = 'csv' AND i > $1::int / 3 - 1000
                        THEN '100 records were rejected'
                        WHEN i % 97 = 0 THEN s.source || ': gave up after 4 attempts: HTTP 503'
                   END
            FROM generate_series(1, $1::int / 3) AS i
            CROSS JOIN unnest(ARRAY['coinpaprika', 'coingecko', 'csv']) AS s(source)
            CROSS JOIN LATERAL (
                SELECT timestamptz '2025-01-01' + i * interval '5 minutes' AS t
            ) AS at
            ORDER BY i, s.source
            """,
            RUNS,
        )
        await conn.execute(
            """
            INSERT INTO rejected_records (source, first_run_id, last_run_id, locator, file,
                line_no, raw, reason, raw_hash, first_seen_at, last_seen_at)
            SELECT 'csv', r.id, r.id, 'f' || r.id || ':' || line,
                   '/data/csv/prices-' || r.id || '.csv', line,
                   line || ',Bitcoin,BTC,29-04-13 23:59,14.748.800.659.179.600,134,13.444.400',
                   'price ''14.748.800.659.179.600'' has several dots: thousands separators or '
                   || 'a mangled decimal', md5(r.id::text || ':' || line), r.finished_at,
                   r.finished_at
            FROM etl_runs AS r CROSS JOIN generate_series(2, 101) AS line
            WHERE r.source = 'csv' AND r.rejected > 0
            ORDER BY r.id, line
            """
        )
        await conn.execute("VACUUM ANALYZE etl_runs")
        await conn.execute("VACUUM ANALYZE rejected_records")
        elapsed = time.perf_counter() - started
        print(f"loaded the run history and rejected records in {elapsed:.1f} s", file=sys.stderr)
    finally:
        await conn.close()


async def deep_cursor(url: str) -> str:
    """The cursor of the rejected listing after 90 % of the records."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT last_run_id, id FROM rejected_records ORDER BY last_run_id DESC, id"
            " OFFSET $1 LIMIT 1",
            REJECTED * 9 // 10,
        )
        assert row is not None
        return f"{row['last_run_id']}.{row['id']}"
    finally:
        await conn.close()


def scenarios(base: str, cursor: str, busy_run: int) -> dict[str, str]:
    return {
        "/ (status)": f"{base}/",
        f"/assets/{ASSET} (a year, 3 sources)": f"{base}/assets/{ASSET}",
        "/assets (every asset)": f"{base}/assets",
        "/assets?q=bnch": f"{base}/assets?q=bnch",
        "/rejected (page 1)": f"{base}/rejected",
        "/rejected?source=csv": f"{base}/rejected?source=csv",
        "/rejected?run_id= (one run)": f"{base}/rejected?run_id={busy_run}",
        "/rejected?cursor= (after 90,000)": f"{base}/rejected?cursor={cursor}",
        "/api/v1/stats (JSON reference)": f"{base}/api/v1/stats",
        f"/api/v1/assets/{ASSET} (JSON reference)": f"{base}/api/v1/assets/{ASSET}",
        "/api/v1/assets/.../history?interval=1d (JSON reference)": (
            f"{base}/api/v1/assets/{ASSET}/history?interval=1d"
        ),
        "/api/v1/rejected (JSON reference)": f"{base}/api/v1/rejected",
    }


def measure(client: httpx.Client, url: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        latencies.append(elapsed)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="per scenario and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(WORK / "assets-pg")
    serve = None
    try:
        url = asyncio.run(ensure_database(server.start(), BENCH_DB))
        asyncio.run(load(url))
        asyncio.run(load_history(url))
        cursor = asyncio.run(deep_cursor(url))
        serve, base = start_serve(url, WORK / "serve-pages.log")
        busy_run = int(cursor.split(".")[0])
        targets = scenarios(base, cursor, busy_run)
        samples: dict[str, list[float]] = {name: [] for name in targets}
        sizes: dict[str, int] = {}
        with httpx.Client(timeout=30) as client:
            for name, target in targets.items():
                sizes[name] = len(client.get(target).content)
                measure(client, target, 5)  # warm up
            for _ in range(args.rounds):
                for name, target in targets.items():
                    samples[name] += measure(client, target, args.requests)
        print(
            f"1,000,000 unified rows, {RUNS:,} runs, {REJECTED:,} rejected records; "
            f"{args.rounds} rounds x {args.requests} sequential requests per scenario"
        )
        print()
        print("| page | p50 ms | p90 ms | p99 ms | max ms | bytes | under 100 ms |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for name, values in samples.items():
            p99 = percentile(values, 0.99)
            print(
                f"| {name} | {statistics.median(values):.1f} | {percentile(values, 0.9):.1f} "
                f"| {p99:.1f} | {max(values):.1f} | {sizes[name]:,} "
                f"| {'yes' if p99 < GOAL_MS else '**no**'} |"
            )
    finally:
        if serve is not None:
            stop(serve)
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
