"""Scale bench: days of default operation through the real loader, daily maintenance, and
what it costs in time, disk and query latency (issue 13).

    .venv/bin/python bench/scale.py [--days 30] [--raw-retention-days 2]
                                    [--full-resolution-days 30] [--queries 15]
                                    [--shared-buffers-mb 512]

Starts its own embedded PostgreSQL in a temporary directory (removed afterwards) and
simulates `--days` days ending now: every 5 minutes, CoinGecko's default 1,000 coins (4 pages
of 250) and 2,472 CoinPaprika tickers (batches of 1,000), that is 3,472 observations per
snapshot and 999,936 a day, each with a raw payload of the real recorded size and variety
(the fixtures' 250 CoinGecko records, ~1,040 B of JSON, and 81 CoinPaprika tickers, ~725 B,
in turn, with id, prices and time replaced), written by the
pipeline's loader (`cryptoetl.db.load`: the batch's partitions made first, then its raw
records as one page, unified upsert, one transaction per batch). After each simulated day the
maintenance steps of `cryptoetl maintain` run with the simulated clock, as the daily job
would: partitions ahead, raw retention (`--raw-retention-days`, short so the run stays
within ~15 GB), thinning (`--full-resolution-days`).

It reports, in one run:
- ingest observations/s of day 1 and of the last day (whole day; and one hour of it against a
  raw COPY of the same kind of hour, each batch's page of raw records into raw_http_pages and
  its unified rows into unified_crypto_data, the same tables at that size, one transaction per
  batch);
- bytes per observation of the unified history (with indexes), the raw records (bytes of
  raw_http_pages per record it holds) and the rollups, before and after the last maintenance,
  and after thinning everything older than the full-resolution window (maintenance run as
  if `--full-resolution-days` more days had passed), and from those the disk a year of
  default operation takes at steady state;
- the bytes a rollup row adds at steady state: unified_hourly's growth over the last simulated
  day (after the first quarter day, for a one-day run) per row added, which is what the
  live rollups of a year are projected from (a young table's average would count its free space
  wrongly); closed months are projected at the compacted size the steady-state maintenance
  leaves (its `compact_rollups` step);
- median latency (uncached, in-process app over httpx) of `/data` page 1, a coin filter, a
  deep cursor, `latest`, one asset with the latest price of each source, and a year of hourly
  history of that asset, at day 1 and the last day. Before day 1 the asset's two coins get a
  year of hourly history (as a backfill brings it: 2 x 8,760 rows through the same loader), so
  the year's answer is 8,760 buckets at both points and the two latencies compare the same
  answer over a history 30 times larger. The queries are timed in interleaved rounds (each
  query once per round, after one untimed round), so a burst of load from elsewhere on a
  shared machine lands on every query alike, not on whichever query was being repeated.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cryptoetl.app import create_app  # noqa: E402
from cryptoetl.assets.sync import sync_assets  # noqa: E402
from cryptoetl.config import Settings  # noqa: E402
from cryptoetl.db import load, partitions  # noqa: E402
from cryptoetl.db.embedded import EmbeddedPostgres, server_parameters  # noqa: E402
from cryptoetl.db.migrate import migrate  # noqa: E402
from cryptoetl.db.pool import Pool, open_pool  # noqa: E402
from cryptoetl.etl import maintain  # noqa: E402
from cryptoetl.log import configure_logging  # noqa: E402
from cryptoetl.models import LocatorKind  # noqa: E402
from cryptoetl.sources import load_settings  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
SNAPSHOTS_PER_DAY = 288
SOURCES = {"coingecko": (1000, 250), "coinpaprika": (2472, 1000)}  # coins, batch size
PER_SNAPSHOT = sum(coins for coins, _ in SOURCES.values())
COIN_N = 7  # the coin of the /data coin filter and of the asset history
COIN = f"coin-{COIN_N}"
DEEP_PAGE = 3000  # the cursor after 300,000 rows


def templates() -> dict[str, list[dict[str, Any]]]:
    """The recorded records of each source (a page of 250 CoinGecko coins, 81 CoinPaprika
    tickers): coin n's payload is record n (cycling) with its id, prices and time replaced, so
    a page of raw records compresses like a real page, not like one record repeated."""
    coingecko = orjson.loads(
        (
            FIXTURES / "coingecko" / "coingecko_coins_markets_usd_per250_p1_2025-02-09_raw.json"
        ).read_bytes()
    )
    coinpaprika = orjson.loads((FIXTURES / "coinpaprika" / "tickers_usd.json").read_bytes())
    return {"coingecko": coingecko, "coinpaprika": coinpaprika}


def coin_id(source: str, n: int) -> str:
    return f"coin-{n}" if source == "coingecko" else f"c{n}-coin-{n}"


@dataclass
class Batch:
    source: str
    raw: list[load.RawRow]
    unified: list[load.StageRow]  # raw_id filled in by the loader


def observation(
    source: str, n: int, at: datetime, step: int, template: dict[str, list[dict[str, Any]]]
) -> tuple[load.RawRow, load.StageRow]:
    """Coin n of `source` observed at `at`: its raw record (record n of the recorded ones, in
    turn, with id, prices and time replaced) and its unified row (raw_id filled in later)."""
    price = 1.0 + n + ((step * 7919 + n) % 1000) / 1000
    cap, volume = price * 1e7, price * 1e5
    base = template[source][n % len(template[source])]
    record = dict(base)
    if source == "coingecko":
        record.update(
            id=coin_id(source, n), name=f"Coin {n}", symbol=f"c{n}",
            current_price=price, market_cap=cap, total_volume=volume,
            last_updated=at.isoformat(),
        )  # fmt: skip
    else:
        record.update(
            id=coin_id(source, n), name=f"Coin {n}", symbol=f"C{n}",
            last_updated=at.isoformat(),
            quotes={"USD": {**base["quotes"]["USD"], "price": price,
                            "market_cap": cap, "volume_24h": volume}},
        )  # fmt: skip
    payload = orjson.dumps(record).decode()
    return (
        load.RawRow(coin_id(source, n), at, None, None, payload),
        (coin_id(source, n), f"Coin {n}", f"C{n}", price, cap, volume, at, None),
    )


def snapshot_batches(when: datetime, template: dict[str, list[dict[str, Any]]]) -> list[Batch]:
    """One 5-minute snapshot: every coin of both sources, in the sources' batch sizes."""
    out: list[Batch] = []
    step = int(when.timestamp()) // 300
    for source, (coins, size) in SOURCES.items():
        for first in range(0, coins, size):
            pairs = [
                observation(source, n, when + timedelta(seconds=n % 60), step, template)
                for n in range(first, min(first + size, coins))
            ]
            out.append(Batch(source, [r for r, _ in pairs], [u for _, u in pairs]))
    return out


def backfill_batches(
    start: datetime, template: dict[str, list[dict[str, Any]]], size: int = 500
) -> list[Batch]:
    """A year of hourly history before `start` of the bench coin (COIN_N) of each source, as
    `cryptoetl backfill` would bring it: so the asset history query answers a whole year at
    day 1 and at the last day alike, and its two latencies compare the same answer over a
    history 30 times larger."""
    out: list[Batch] = []
    hours = [start - timedelta(hours=h) for h in range(365 * 24, 0, -1)]
    for source in SOURCES:
        for first in range(0, len(hours), size):
            pairs = [
                observation(source, COIN_N, at, int(at.timestamp()) // 300, template)
                for at in hours[first : first + size]
            ]
            out.append(Batch(source, [r for r, _ in pairs], [u for _, u in pairs]))
    return out


async def load_batch(pool: Pool, run_ids: dict[str, int], batch: Batch, at: datetime) -> None:
    """What the pipeline does with a batch: its partitions first (a short transaction of their
    own), then raw rows and the unified upsert in one transaction."""
    async with pool.acquire() as conn:
        observed = [row[6] for row in batch.unified]
        await partitions.ensure_for_batch(conn, LocatorKind.OBSERVATION, observed, at)
        async with conn.transaction():
            await load.ensure_staging(conn)
            raw_ids = await load.store_raw(
                conn, LocatorKind.OBSERVATION, batch.source, run_ids[batch.source], at, batch.raw
            )
            rows = [(*row[:7], raw_id) for row, raw_id in zip(batch.unified, raw_ids, strict=True)]
            await load.upsert_unified(conn, batch.source, run_ids[batch.source], rows)


async def copy_batch(
    pool: Pool, copier: asyncpg.Connection[Any], run_ids: dict[str, int], batch: Batch, at: datetime
) -> None:
    """The limit: what the loader writes, COPYed straight in: the batch's page of raw records
    into raw_http_pages and its rows into unified_crypto_data."""
    async with pool.acquire() as conn:
        observed = [row[6] for row in batch.unified]
        await partitions.ensure_for_batch(conn, LocatorKind.OBSERVATION, observed, at)
    run_id = run_ids[batch.source]
    async with copier.transaction():
        page = (
            batch.source,
            run_id,
            at,
            [r.key for r in batch.raw],
            [r.at for r in batch.raw],
            "[" + ",".join(r.payload for r in batch.raw) + "]",
        )
        await copier.copy_records_to_table(
            "raw_http_pages",
            records=[page],
            columns=("source", "run_id", "fetched_at", "keys", "times", "records"),
        )
        await copier.copy_records_to_table(
            "unified_crypto_data",
            records=[(*row[:7], batch.source, run_id) for row in batch.unified],
            columns=(*load.UNIFIED_STAGE_COLUMNS[:7], "source", "run_id"),
        )


async def start_runs(pool: Pool) -> dict[str, int]:
    ids = {}
    for source in SOURCES:
        ids[source] = await pool.fetchval(
            "INSERT INTO etl_runs (source, trigger, owner) VALUES ($1, 'cli', 'bench')"
            " RETURNING id",
            source,
        )
    return ids


async def finish_runs(pool: Pool, run_ids: dict[str, int]) -> None:
    await pool.execute(
        "UPDATE etl_runs SET status = 'success', finished_at = now() WHERE id = ANY($1::bigint[])",
        list(run_ids.values()),
    )


SIZES = """
SELECT t.name,
       CASE WHEN c.relkind = 'p'
            THEN (SELECT coalesce(sum(pg_total_relation_size(p.relid)), 0)
                    FROM pg_partition_tree(c.oid) AS p)
            ELSE pg_total_relation_size(c.oid) END::bigint AS bytes
FROM unnest($1::text[]) AS t(name)
JOIN pg_class AS c ON c.oid = t.name::regclass
"""


# What a "row" is per table: raw_http_pages holds a batch per row, its rows are its records.
ROWS = {"raw_http_pages": "coalesce(sum(cardinality(keys)), 0)"}


async def sizes(pool: Pool) -> dict[str, tuple[int, int]]:
    """(bytes with indexes and TOAST, rows) per table; partitions summed."""
    out = {}
    for name, bytes_ in await pool.fetch(
        SIZES, ["unified_crypto_data", "raw_http_pages", "unified_hourly"]
    ):
        rows = await pool.fetchval(f"SELECT {ROWS.get(name, 'count(*)')} FROM {name}")
        out[name] = (int(bytes_), int(rows))
    return out


ROLLUP_SIZE = """
SELECT coalesce(sum(pg_total_relation_size(p.relid)), 0)::bigint
FROM (SELECT 'unified_hourly'::regclass AS relid
      UNION SELECT relid FROM pg_partition_tree('unified_hourly') WHERE isleaf) AS p
"""
CHECKPOINT_HOURS = 6  # the rollups' size is taken this often (simulated hours)
LIVE_ROLLUP_DAYS = 32  # a month and a day: the rollups not yet compacted, at most


@dataclass(frozen=True)
class RollupCheckpoint:
    hours: int  # simulated hours loaded
    bytes: int
    rows: int


async def rollup_checkpoint(pool: Pool, hours: int) -> RollupCheckpoint:
    """unified_hourly's bytes (with its index; partitions summed) and rows after `hours`."""
    bytes_ = await pool.fetchval(ROLLUP_SIZE)
    rows = await pool.fetchval("SELECT count(*) FROM unified_hourly")
    return RollupCheckpoint(hours, int(bytes_), int(rows))


def rollup_marginal(
    points: Sequence[RollupCheckpoint],
) -> tuple[float, RollupCheckpoint, RollupCheckpoint]:
    """Bytes a rollup row adds at steady state: the growth of unified_hourly over the last
    simulated day after its first checkpoint (the run after its first quarter day, for a
    one-day run) divided by the rows added, so a young table's free space does not flatter or
    burden the figure. The window stays inside one day: the maintenance after each day may
    compact a closed month, which shrinks the table (a whole day's window once measured
    -3,040 B a row)."""
    end = points[-1]
    span = (
        24 - CHECKPOINT_HOURS
        if end.hours >= 48
        else max(CHECKPOINT_HOURS, end.hours - CHECKPOINT_HOURS)
    )
    start = next(p for p in points if p.hours >= end.hours - span)
    rows = end.rows - start.rows
    return ((end.bytes - start.bytes) / rows if rows else 0.0), start, end


async def run_maintenance(pool: Pool, settings: Any, now: datetime) -> float:
    started = time.perf_counter()
    for step in maintain.STEPS:
        await step(pool, settings, now)
    return time.perf_counter() - started


async def query_latencies(
    url: str, settings: Any, asset: str, now: datetime, n: int
) -> dict[str, float]:
    """Median ms per query, uncached, through the real app in-process."""
    app = create_app(settings, database_url=url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=300
        ) as c:
            total = (await c.get("/api/v1/data")).json()["total"]
            page = max(2, min(DEEP_PAGE, total // 100 // 2))  # the cursor after that many pages
            deep = (await c.get("/api/v1/data", params={"page": page})).json()
            queries = {
                "/data page 1": ("/api/v1/data", {}),
                "/data coin filter": ("/api/v1/data", {"coin_id": COIN}),
                "/data deep cursor": ("/api/v1/data", {"cursor": deep["next_cursor"]}),
                "/data latest": ("/api/v1/data", {"latest": "true"}),
                "asset, latest of each source": (f"/api/v1/assets/{asset}", {}),
                "asset history, a year hourly": (
                    f"/api/v1/assets/{asset}/history",
                    {"interval": "1h", "since": (now - timedelta(days=365)).isoformat()},
                ),
            }
            times: dict[str, list[float]] = {name: [] for name in queries}
            for round_ in range(n + 1):  # round 0: a fresh pool and caches; not timed
                for name, (path, params) in queries.items():
                    started = time.perf_counter()
                    response = await c.get(path, params=params)
                    if round_:
                        times[name].append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, (name, response.text[:200])
            out = {name: statistics.median(ms) for name, ms in times.items()}
    return out


@dataclass
class DayResult:
    day: int
    seconds: float  # in the loader (the COPY hour of the first and last day left out)
    observations: int  # written by the loader
    maintenance_seconds: float


async def simulate(url: str, args: argparse.Namespace) -> None:
    template = templates()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=args.days)
    data_dir = Path(tempfile.gettempdir())  # unused: DATABASE_URL is set; nothing is created
    settings = load_settings(
        env_file=None,
        database_url=url,
        cryptoetl_data_dir=data_dir,
        api_cache_mb=0,
        log_level="WARNING",
        log_format="json",
        raw_retention_days=args.raw_retention_days,
        full_resolution_days=args.full_resolution_days,
    )
    raw_conn = await asyncpg.connect(url)
    await migrate(raw_conn)
    version = await raw_conn.fetchval("SHOW server_version")
    days: list[DayResult] = []
    hours: dict[int, tuple[float, float]] = {}  # day -> (COPY obs/s, loader obs/s)
    latencies: dict[int, dict[str, float]] = {}
    before: dict[str, tuple[int, int]] = {}
    rollups: list[RollupCheckpoint] = [RollupCheckpoint(0, 0, 0)]
    async with open_pool(url, max_size=6) as pool:
        backfill_ids = await start_runs(pool)
        for batch in backfill_batches(start, template):
            await load_batch(pool, backfill_ids, batch, start)
        await finish_runs(pool, backfill_ids)
        for day in range(1, args.days + 1):
            day_start = start + timedelta(days=day - 1)
            run_ids = await start_runs(pool)
            measure_hours = day in (1, args.days)
            copy_seconds = loader_hour_seconds = loader_seconds = 0.0
            loader_obs = 0
            for snap in range(SNAPSHOTS_PER_DAY):
                when = day_start + timedelta(minutes=5 * snap)
                batches = snapshot_batches(when, template)
                t0 = time.perf_counter()
                if measure_hours and snap < 12:  # the first hour: the raw COPY limit
                    for batch in batches:
                        await copy_batch(pool, raw_conn, run_ids, batch, when)
                    copy_seconds += time.perf_counter() - t0
                    continue
                for batch in batches:
                    await load_batch(pool, run_ids, batch, when)
                elapsed = time.perf_counter() - t0
                loader_seconds += elapsed
                loader_obs += PER_SNAPSHOT
                if measure_hours and snap < 24:
                    loader_hour_seconds += elapsed
                if (snap + 1) % (12 * CHECKPOINT_HOURS) == 0:
                    loaded = (day - 1) * 24 + (snap + 1) // 12
                    rollups.append(await rollup_checkpoint(pool, loaded))
            await finish_runs(pool, run_ids)
            if measure_hours:
                hour_obs = 12 * PER_SNAPSHOT
                hours[day] = (hour_obs / copy_seconds, hour_obs / loader_hour_seconds)
            if day == args.days:
                before = await sizes(pool)
            maintenance = await run_maintenance(pool, settings, day_start + timedelta(days=1))
            days.append(DayResult(day, loader_seconds, loader_obs, maintenance))
            print(
                f"day {day}: {loader_obs / loader_seconds:,.0f} obs/s, "
                f"maintenance {maintenance:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            if day == 1 or day == args.days:
                await raw_conn.execute("VACUUM ANALYZE")
                if day == 1:
                    await sync_assets(pool)
                asset = await pool.fetchval(
                    "SELECT asset_id FROM asset_mappings WHERE source = 'coingecko'"
                    " AND coin_id = $1",
                    COIN,
                )
                latencies[day] = await query_latencies(
                    url, settings, asset, day_start + timedelta(days=1), args.queries
                )
        after = await sizes(pool)
        # steady state: every observation older than the window thinned
        far = end + timedelta(days=args.full_resolution_days + 7)
        steady_seconds = await run_maintenance(pool, settings, far)
        steady = await sizes(pool)
    await raw_conn.close()
    report(
        args, str(version), days, hours, latencies, before, after, steady, steady_seconds, rollups
    )


def per_obs(sizes_: dict[str, tuple[int, int]], name: str) -> float:
    bytes_, rows = sizes_[name]
    return bytes_ / rows if rows else 0.0


def report(
    args: argparse.Namespace,
    version: str,
    days: Sequence[DayResult],
    hours: dict[int, tuple[float, float]],
    latencies: dict[int, dict[str, float]],
    before: dict[str, tuple[int, int]],
    after: dict[str, tuple[int, int]],
    steady: dict[str, tuple[int, int]],
    steady_seconds: float,
    rollups: Sequence[RollupCheckpoint],
) -> None:
    last = args.days
    print(
        f"{args.days} simulated days x {SNAPSHOTS_PER_DAY * PER_SNAPSHOT:,} observations "
        f"({PER_SNAPSHOT:,} coins x 288 snapshots); raw retention {args.raw_retention_days} d, "
        f"full resolution {args.full_resolution_days} d; PostgreSQL {version}; "
        f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print("\n| ingest | obs/s | vs day 1 |\n|---|---:|---:|")
    first = days[0].observations / days[0].seconds
    for d in days:
        rate = d.observations / d.seconds
        print(
            f"| day {d.day} (maintenance after it {d.maintenance_seconds:.1f} s) "
            f"| {rate:,.0f} | {rate / first:.2f} |"
        )
    print("\n| one hour of day | raw COPY obs/s | loader obs/s | loader / COPY |")
    print("|---|---:|---:|---:|")
    for day in (1, last):
        copy, loader = hours[day]
        print(f"| day {day} | {copy:,.0f} | {loader:,.0f} | {loader / copy:.2f} |")
    print(
        "\n| table | rows before | bytes/row before | rows after | bytes/row after "
        "| rows steady | bytes/row steady |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in before:
        print(
            f"| {name} | {before[name][1]:,} | {per_obs(before, name):,.0f} | {after[name][1]:,} "
            f"| {per_obs(after, name):,.0f} | {steady[name][1]:,} | {per_obs(steady, name):,.0f} |"
        )
    total_before = sum(b for b, _ in before.values())
    total_after = sum(b for b, _ in after.values())
    observations = args.days * SNAPSHOTS_PER_DAY * PER_SNAPSHOT
    print(
        f"\nall three tables: {total_before / 1e9:.2f} GB before the last maintenance, "
        f"{total_after / 1e9:.2f} GB after; {total_before / observations:,.0f} and "
        f"{total_after / observations:,.0f} bytes per observation ingested; steady-state "
        f"maintenance (everything older than the window thinned) took {steady_seconds:.1f} s"
    )
    marginal, start, end = rollup_marginal(rollups)
    print(
        f"rollups at steady state: {marginal:,.0f} bytes per row added from hour {start.hours} "
        f"to hour {end.hours} ({end.rows - start.rows:,} rows, "
        f"{(end.bytes - start.bytes) / 1e6:,.1f} MB); {end.bytes / max(end.rows, 1):,.0f} B/row "
        f"for the whole table before maintenance"
    )
    # a year of default operation at steady state: 30 days at full resolution, the rest
    # thinned to one row per (source, coin, hour), rollups for every hour, 30 days of raw
    per_day = SNAPSHOTS_PER_DAY * PER_SNAPSHOT
    full = per_obs(before, "unified_crypto_data")
    thinned = per_obs(steady, "unified_crypto_data")
    raw = per_obs(before, "raw_http_pages")
    rollup = marginal  # what a day of live rollups adds, not a young table's average
    # closed months of rollups are compacted by maintenance (the steady-state run compacted
    # every month of the run): at most the current month and a day stay live
    compacted = per_obs(steady, "unified_hourly")
    hourly_rows = per_day / 12
    year = (
        30 * per_day * full
        + (365 - 30) * hourly_rows * thinned
        + LIVE_ROLLUP_DAYS * hourly_rows * rollup
        + (365 - LIVE_ROLLUP_DAYS) * hourly_rows * compacted
        + 30 * per_day * raw
    )
    print(
        f"projected disk for a year of defaults (FULL_RESOLUTION_DAYS=30, RAW_RETENTION_DAYS=30): "
        f"{year / 1e9:.1f} GB = 30 d x {per_day:,} x {full:,.0f} B (full resolution) + 335 d x "
        f"{hourly_rows:,.0f} x {thinned:,.0f} B (thinned) + {LIVE_ROLLUP_DAYS} d x "
        f"{hourly_rows:,.0f} x {rollup:,.0f} B (live rollups) + {365 - LIVE_ROLLUP_DAYS} d x "
        f"{hourly_rows:,.0f} x {compacted:,.0f} B (compacted rollups) + 30 d x {per_day:,} x "
        f"{raw:,.0f} B (raw)"
    )
    print(f"\n| query (uncached, median ms) | day 1 | day {last} | ratio |\n|---|---:|---:|---:|")
    for name, ms in latencies[1].items():
        later = latencies[last][name]
        print(f"| {name} | {ms:.1f} | {later:.1f} | {later / ms:.2f} |")


async def with_server(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="cryptoetl-scale-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - the embedded server runs as its own user
        # the service's embedded server, with its settings (EMBEDDED_SHARED_BUFFERS_MB)
        server = EmbeddedPostgres(Path(tmp), server_parameters(args.shared_buffers_mb))
        url = await asyncio.to_thread(server.start)
        try:
            await simulate(url, args)
        finally:
            await asyncio.to_thread(server.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--raw-retention-days", type=int, default=2)
    parser.add_argument("--full-resolution-days", type=int, default=30)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument(
        "--shared-buffers-mb",
        type=int,
        default=Settings.model_fields["embedded_shared_buffers_mb"].default,
        help="the embedded server's shared_buffers (default: EMBEDDED_SHARED_BUFFERS_MB's)",
    )
    parser.add_argument(
        "--fraction", type=float, default=1.0, help="of the default coins (a smoke test)"
    )
    args = parser.parse_args()
    configure_logging("WARNING", "json")
    global PER_SNAPSHOT
    for source, (coins, size) in list(SOURCES.items()):
        SOURCES[source] = (max(1, round(coins * args.fraction)), size)
    PER_SNAPSHOT = sum(coins for coins, _ in SOURCES.values())
    asyncio.run(with_server(args))


if __name__ == "__main__":
    main()
