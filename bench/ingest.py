"""Ingest benchmark: the loader against a raw COPY, on 1,000,000 synthetic unified rows.

    .venv/bin/python bench/ingest.py [--rows 1000000] [--batch 50000] [--reps 3]

Starts its own embedded PostgreSQL in a temporary directory (or, with DATABASE_URL set, creates
and afterwards drops a database of its own on that server: it never touches your data). Each
repetition starts from empty tables and measures, in this order:

- raw COPY: `copy_records_to_table` into `bench_copy`, created `(LIKE unified_crypto_data
  INCLUDING ALL)` (same columns, defaults, identity and indexes; no triggers): the physical limit;
- (a) first load: the pipeline's loader (`cryptoetl.db.load`: COPY into a temporary staging
  table, then one INSERT ... ON CONFLICT DO UPDATE ... WHERE IS DISTINCT FROM) into the empty
  unified table, one transaction per batch as in a run;
- (b) re-load of the same rows: every row unchanged;
- (c) a load of as many rows, 10 % of them new observations and the rest unchanged;
- (a) again with the hourly rollup triggers disabled (0013), for their cost;
- (a) again with every trigger disabled (source_stats and rollups), for the stats' cost.

Rows are fed in the same batches everywhere (one transaction each). It prints rows/s and the
ratio to the raw COPY of the same repetition, the medians over the repetitions, and the
process's peak memory. Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from cryptoetl.db import load
from cryptoetl.db.embedded import EmbeddedPostgres
from cryptoetl.db.migrate import migrate
from cryptoetl.db.pool import RawConnection as Conn
from cryptoetl.db.pool import with_database

COINS = 1000
SOURCE = "coingecko"
COPY_COLUMNS = (*load.UNIFIED_STAGE_COLUMNS, "source", "run_id")
Row = load.StageRow


def synthetic(first: int, count: int, seed: int = 7) -> list[Row]:
    """`count` observations: 1,000 coins, one snapshot every 5 minutes, snapshot-major order
    (the order in which an upstream delivers them)."""
    rnd = random.Random(seed + first)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    rows: list[Row] = []
    for i in range(first, first + count):
        snapshot, coin = divmod(i, COINS)
        rows.append(
            (
                f"coin-{coin}",
                f"Coin {coin}",
                f"C{coin}",
                rnd.uniform(0.0001, 90_000.0),
                rnd.uniform(1e5, 2e12),
                rnd.uniform(1e3, 5e10),
                base + timedelta(minutes=5 * snapshot, seconds=coin % 60),
                i + 1,
            )
        )
    return rows


def batches(rows: Sequence[Row], size: int) -> list[Sequence[Row]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


async def raw_copy(conn: Conn, rows: Sequence[Row], size: int) -> float:
    await conn.execute(
        "DROP TABLE IF EXISTS bench_copy; "
        "CREATE TABLE bench_copy (LIKE unified_crypto_data INCLUDING ALL)"
    )
    started = time.perf_counter()
    for batch in batches(rows, size):
        async with conn.transaction():
            await conn.copy_records_to_table(
                "bench_copy", records=[(*row, SOURCE, 1) for row in batch], columns=COPY_COLUMNS
            )
    elapsed = time.perf_counter() - started
    await conn.execute("DROP TABLE bench_copy")
    return elapsed


async def loader(conn: Conn, rows: Sequence[Row], size: int) -> tuple[float, list[int]]:
    """The pipeline's unified loader, batch by batch; (seconds, [inserted, updated, unchanged])."""
    totals = [0, 0, 0]
    started = time.perf_counter()
    for batch in batches(rows, size):
        async with conn.transaction():
            await load.ensure_staging(conn)
            counts = await load.upsert_unified(conn, SOURCE, 1, batch)
        totals[0] += counts.inserted
        totals[1] += counts.updated
        totals[2] += counts.unchanged
    return time.perf_counter() - started, totals


async def fresh(conn: Conn) -> None:
    await conn.execute("TRUNCATE unified_crypto_data")
    await conn.execute("CHECKPOINT")


async def one_rep(conn: Conn, rows: list[Row], size: int) -> dict[str, float]:
    n = len(rows)
    new_rows = synthetic(n, n // 10)
    mixed = rows[n // 10 :] + new_rows
    seconds: dict[str, float] = {}

    await fresh(conn)
    seconds["raw COPY"] = await raw_copy(conn, rows, size)

    await fresh(conn)
    seconds["(a) first load"], totals = await loader(conn, rows, size)
    assert totals == [n, 0, 0], totals
    await conn.execute("CHECKPOINT")
    seconds["(b) re-load, all unchanged"], totals = await loader(conn, rows, size)
    assert totals == [0, 0, n], totals
    await conn.execute("CHECKPOINT")
    seconds["(c) 10 % new rows"], totals = await loader(conn, mixed, size)
    assert totals == [len(new_rows), 0, n - n // 10], totals
    exact = await conn.fetchval("SELECT row_count FROM source_stats WHERE source = $1", SOURCE)
    assert exact == n + len(new_rows), exact  # the triggers kept the count exact

    rolled = await conn.fetchval("SELECT sum(count) FROM unified_hourly")
    assert rolled == n + len(new_rows), rolled  # the rollups counted every observation once

    await fresh(conn)
    await set_triggers(conn, "DISABLE", ROLLUP_TRIGGERS)
    try:
        seconds["(a) first load, rollup triggers off"], _ = await loader(conn, rows, size)
    finally:
        await set_triggers(conn, "ENABLE", ROLLUP_TRIGGERS)

    await fresh(conn)
    await conn.execute("ALTER TABLE unified_crypto_data DISABLE TRIGGER USER")
    try:
        seconds["(a) first load, stats and rollup triggers off"], _ = await loader(conn, rows, size)
    finally:
        await conn.execute("ALTER TABLE unified_crypto_data ENABLE TRIGGER USER")
    return seconds


ROLLUP_TRIGGERS = ("unified_hourly_insert", "unified_hourly_update", "unified_hourly_delete")


async def set_triggers(conn: Conn, action: str, names: Sequence[str]) -> None:
    for name in names:
        await conn.execute(f"ALTER TABLE unified_crypto_data {action} TRIGGER {name}")


async def bench(url: str, rows_count: int, size: int, reps: int) -> None:
    conn: Conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    try:
        await migrate(conn)
        version = await conn.fetchval("SHOW server_version")
        rows = synthetic(0, rows_count)
        rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results: list[dict[str, float]] = []
        for rep in range(reps):
            results.append(await one_rep(conn, rows, size))
            line = ", ".join(f"{k} {rows_count / v:,.0f}/s" for k, v in results[-1].items())
            print(f"rep {rep + 1}: {line}", file=sys.stderr, flush=True)
    finally:
        await conn.close()
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report(results, rows_count, size, reps, str(version), rss_data, rss_peak)


def report(
    results: list[dict[str, float]],
    rows_count: int,
    size: int,
    reps: int,
    version: str,
    rss_data: int,
    rss_peak: int,
) -> None:
    print(
        f"{rows_count:,} rows in batches of {size:,}, median of {reps}; PostgreSQL {version}; "
        f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        "| what | rows/s (median) | ratio to raw COPY (median of per-run ratios) | runs (rows/s) |"
    )
    print("|---|---:|---:|---|")
    for name in results[0]:
        rates = [rows_count / r[name] for r in results]
        ratios = [r["raw COPY"] / r[name] for r in results]
        runs = ", ".join(f"{rate:,.0f}" for rate in rates)
        print(
            f"| {name} | {statistics.median(rates):,.0f} | {statistics.median(ratios):.2f} "
            f"| {runs} |"
        )
    trig_on = statistics.median(r["(a) first load"] for r in results)
    no_rollup = statistics.median(r["(a) first load, rollup triggers off"] for r in results)
    trig_off = statistics.median(
        r["(a) first load, stats and rollup triggers off"] for r in results
    )
    print(f"rollup triggers cost {100 * (trig_on / no_rollup - 1):+.0f} % on a first load")
    print(
        f"source_stats triggers cost {100 * (no_rollup / trig_off - 1):+.0f} % on a first load "
        "without rollups"
    )
    print(
        f"peak memory (max RSS) of the process: {rss_peak / 1024:,.0f} MiB, of which "
        f"{rss_data / 1024:,.0f} MiB was reached holding the generated rows before loading"
    )


async def with_server(run: Callable[[str], Awaitable[None]]) -> None:
    external = os.environ.get("DATABASE_URL")
    if external:
        name = f"cryptoetl_bench_{uuid.uuid4().hex[:8]}"
        admin: Conn = await asyncpg.connect(external)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            await run(with_database(external, name))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        return
    with tempfile.TemporaryDirectory(prefix="cryptoetl-bench-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - the embedded server runs as its own user
        server = EmbeddedPostgres(Path(tmp))
        url = await asyncio.to_thread(server.start)
        try:
            await run(url)
        finally:
            await asyncio.to_thread(server.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(with_server(lambda url: bench(url, args.rows, args.batch, args.reps)))


if __name__ == "__main__":
    main()
