"""Export bench: `cryptoetl export` of 1,000,000 rows, its peak memory and its rate.

    .venv/bin/python bench/export.py [--rows 1000000] [--rounds 3]

What it does, in one run:
1. starts (or reuses) the embedded PostgreSQL of `bench/.work/` and loads the rows as
   `bench/api.py` does (two sources, 2,000 coins every 5 minutes: two slices of 500,000 rows,
   the largest days the export meets at the default settings);
2. per round: the floor, `COPY (the export's SELECT) TO STDOUT` into nothing, which is what
   PostgreSQL alone takes to hand the rows over; then `cryptoetl export --out DIR --force` as
   a real subprocess into a fresh directory, its peak resident memory (the kernel's
   `ru_maxrss` for that child, from `wait4`) and wall time; then the same export again
   without `--force` (every day unchanged: the resume/no-op cost); then one over an empty
   range (the command's start-up alone, to tell it from the export's own time and memory);
3. prints medians: rows/s of each, export / floor, peak RSS (the issue's limit: < 250 MB),
   bytes per row as Parquet and in PostgreSQL (heap and indexes). The export directory is
   removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from api import BENCH_DB, WORK, load

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cryptoetl.db.embedded import EmbeddedPostgres  # noqa: E402
from cryptoetl.db.server import ensure_database  # noqa: E402

CRYPTOETL = str(Path(sys.executable).parent / "cryptoetl")
LIMIT_MB = 250


async def floor_seconds(url: str) -> float:
    """COPY of exactly what the export selects (every slice), into nothing."""
    conn = await asyncpg.connect(url)
    try:
        slices = await conn.fetch(
            "SELECT DISTINCT source, date_trunc('day', observed_at, 'UTC') AS day "
            "FROM unified_crypto_data"
        )
        started = time.perf_counter()
        for row in slices:

            async def sink(_: bytes) -> None:
                return None

            await conn.copy_from_query(
                """
                SELECT id, coin_id, name, symbol, price_usd, market_cap, volume_24h,
                       (extract(epoch FROM observed_at) * 1000000)::bigint,
                       (extract(epoch FROM ingested_at) * 1000000)::bigint, run_id
                FROM unified_crypto_data
                WHERE source = $1 AND observed_at >= $2::timestamptz
                  AND observed_at < $2::timestamptz + interval '1 day'
                ORDER BY coin_id, observed_at
                """,
                row["source"],
                row["day"],
                output=sink,
                format="binary",
            )
        return time.perf_counter() - started
    finally:
        await conn.close()


def export_run(url: str, out: Path, *extra: str) -> tuple[float, float, str]:
    """One `cryptoetl export` subprocess: (seconds, peak RSS in MB, its stdout)."""
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [CRYPTOETL, "export", "--out", str(out), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    stdout = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"export failed ({process.returncode}): {stdout}")
    return seconds, usage.ru_maxrss / 1024, stdout.strip()


async def table_bytes(url: str) -> tuple[int, int, int]:
    """(heap, indexes, rows) of `unified_crypto_data`."""
    conn = await asyncpg.connect(url)
    try:
        # summed over the partitions when the table is partitioned (its parent holds nothing)
        row = await conn.fetchrow(
            "SELECT coalesce(sum(pg_relation_size(relid)), "
            "pg_relation_size('unified_crypto_data')) AS heap, "
            "coalesce(sum(pg_indexes_size(relid)), "
            "pg_indexes_size('unified_crypto_data')) AS indexes, "
            "(SELECT count(*) FROM unified_crypto_data) AS rows "
            "FROM pg_partition_tree('unified_crypto_data')"
        )
        assert row is not None
        return row["heap"], row["indexes"], row["rows"]
    finally:
        await conn.close()


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.parquet"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "export"
    server = EmbeddedPostgres(WORK / "pg")
    floors, exports, rss, noops, noop_rss, empties, empty_rss = [], [], [], [], [], [], []
    size = 0
    try:
        url = asyncio.run(ensure_database(server.start(), BENCH_DB))
        asyncio.run(load(url, args.rows))
        heap, indexes, rows = asyncio.run(table_bytes(url))
        for round_ in range(args.rounds):
            floors.append(asyncio.run(floor_seconds(url)))
            shutil.rmtree(out, ignore_errors=True)
            seconds, peak, line = export_run(url, out, "--force")
            exports.append(seconds)
            rss.append(peak)
            size = du(out)
            seconds, peak, again = export_run(url, out)
            noops.append(seconds)
            noop_rss.append(peak)
            # start-up alone: the same command over a range with no rows
            seconds, peak, _ = export_run(url, WORK / "export-empty", "--since", "2100-01-01")
            empties.append(seconds)
            empty_rss.append(peak)
            print(
                f"round {round_ + 1}: floor {floors[-1]:.2f} s, export {exports[-1]:.2f} s "
                f"({rss[-1]:.0f} MB), again {noops[-1]:.2f} s: {line} / {again}",
                file=sys.stderr,
            )
    finally:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(WORK / "export-empty", ignore_errors=True)
        server.stop()
    floor, export, noop, empty = (statistics.median(x) for x in (floors, exports, noops, empties))
    peak = statistics.median(rss)
    slices = f"2 sources x 1 day of {rows // 2:,} rows"
    print(f"medians of {args.rounds} rounds, {rows:,} rows ({slices})")
    print("| what | seconds | rows/s | peak RSS |")
    print("|---|---|---|---|")
    print(
        f"| floor: COPY of the export's SELECT, binary, into nothing | {floor:.2f} | "
        f"{rows / floor:,.0f} | |"
    )
    print(
        f"| `cryptoetl export --force` (subprocess, start-up included) | {export:.2f} | "
        f"{rows / export:,.0f} | {peak:.0f} MB (max {max(rss):.0f}) |"
    )
    print(
        f"| `cryptoetl export` again, every day unchanged | {noop:.2f} | | "
        f"{statistics.median(noop_rss):.0f} MB |"
    )
    print(
        f"| `cryptoetl export` of an empty range (start-up alone) | {empty:.2f} | | "
        f"{statistics.median(empty_rss):.0f} MB |"
    )
    print(f"- export / floor rate: {floor / export:.2f}")
    working = max(export - empty, 1e-9)
    print(
        f"- without start-up: {rows / working:,.0f} rows/s, {floor / working:.2f} of the floor; "
        f"memory above start-up: {peak - statistics.median(empty_rss):.0f} MB"
    )
    print(f"- Parquet on disk: {size / rows:.1f} bytes per row ({size / 1e6:.1f} MB, zstd)")
    print(
        f"- unified_crypto_data in PostgreSQL: heap {heap / rows:.0f} + indexes "
        f"{indexes / rows:.0f} = {(heap + indexes) / rows:.0f} bytes per row"
    )
    print(f"- peak RSS {'under' if max(rss) < LIMIT_MB else 'OVER'} the {LIMIT_MB} MB limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
