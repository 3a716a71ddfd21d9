"""Soak bench: a real `cryptoetl serve` on a one-second schedule for 20 minutes or more, against
loopback upstreams that misbehave at random, a CSV directory that keeps gaining files, and API
load alongside. What must hold: memory flat after warm-up, every run ended, exact counts, no 5xx.

    .venv/bin/python bench/soak.py [--minutes 20] [--warmup 5] [--csv-every 15] [--csv-rows 5000]

1. starts an embedded PostgreSQL in `bench/.work/soak-pg` (a fresh `cryptoetl_soak` database
   every time) and the loopback CoinGecko/CoinPaprika of `tests/support/upstream.py` (two
   CoinGecko pages of 250 coins, 81 CoinPaprika tickers) in this process;
2. starts `cryptoetl serve` with ETL_INTERVAL_SECONDS=1, all three sources, quick retries and a
   3 s read timeout;
3. for `--minutes`: every half second each upstream may be handed a fault (429 with
   Retry-After, 500, 503, a 4 s hang, a truncated body, an object instead of a list, an HTML
   page, an empty list); every `--csv-every` seconds a new CSV file of `--csv-rows` rows lands
   in the directory (written aside, then renamed; every fourth file has two bad rows); four
   API clients loop over the data (pages, a cursor page, a coin filter, a CSV export), health,
   stats, runs, rejected, the status page and the rejected page; the service's RSS is sampled
   every 5 s;
4. then the faults and the files stop, the bench waits until every CSV row is in, stops the
   service (SIGTERM) and reads the database.

It prints (and writes to `bench/.work/soak.json`): RSS over time (a sample per minute) and its
spread after warm-up, runs by source and status, runs left `running` (must be 0), rows per
source against what was served (CSV: every good row written; CoinGecko 500; CoinPaprika 81),
rejected rows against the bad rows written, and API answers by status (no 5xx allowed).
Exit status 0 only when every check holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from api import WORK, free_port, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.support.upstream import (  # noqa: E402
    Fault,
    Upstream,
    empty_list,
    hang,
    html_ok,
    not_a_list,
    rate_limited,
    server_error,
    truncated,
)

from cryptoetl.db.embedded import EmbeddedPostgres  # noqa: E402
from cryptoetl.db.pool import with_database  # noqa: E402

DB = "cryptoetl_soak"
TOKEN = "soak-admin-token"  # noqa: S105 - a throwaway token for a loopback service
GECKO_ROWS = 500  # two pages of 250 coins
PAPRIKA_ROWS = 81  # the recorded ticker list
FAULT_CHANCE = 0.3


def faults() -> list[tuple[str, Fault]]:
    return [
        ("429 Retry-After 1", rate_limited("1")),
        ("500", server_error(500)),
        ("503", server_error(503)),
        ("hang 4 s", hang(4)),
        ("truncated body", truncated()),
        ("object not list", not_a_list()),
        ("html 200", html_ok()),
        ("empty list", empty_list()),
    ]


@dataclass
class Soak:
    csv_dir: Path
    csv_rows: int
    files: int = 0
    good_rows: int = 0
    bad_rows: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    answers: Counter[int] = field(default_factory=Counter)
    five_xx: list[str] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)


def write_csv(soak: Soak) -> None:
    """One new file: `csv_rows` observations of 100 coins of its own, every fourth file with
    two bad rows; written aside and renamed, so the service never sees half of it."""
    n = soak.files
    soak.files += 1
    bad = 2 if n % 4 == 3 else 0
    part = soak.csv_dir / f".soak-{n:04d}.part"
    with part.open("w") as handle:
        handle.write("id,Date,Close,Volume\n")
        for i in range(soak.csv_rows):
            price = "n/a" if i < bad else f"{1 + i % 7}.5"
            handle.write(f"f{n}-c{i % 100},{1_600_000_000 + (i // 100) * 60},{price},{i}\n")
    part.rename(soak.csv_dir / f"soak-{n:04d}.csv")
    soak.good_rows += soak.csv_rows - bad
    soak.bad_rows += bad


async def inject_faults(upstream: Upstream, soak: Soak, until: float) -> None:
    rng = random.Random(15)
    while time.monotonic() < until:
        for api in ("coingecko", "coinpaprika"):
            if rng.random() < FAULT_CHANCE and len(upstream._programs[api]) < 2:
                name, fault = rng.choice(faults())
                upstream.program(api, fault)
                soak.faults[f"{api}: {name}"] += 1
        await asyncio.sleep(0.5)


async def add_files(soak: Soak, every: float, until: float) -> None:
    while time.monotonic() < until:
        await asyncio.to_thread(write_csv, soak)
        await asyncio.sleep(every)


async def api_client(base: str, soak: Soak, until: float, seed: int) -> None:
    rng = random.Random(seed)
    paths = [
        "/api/v1/data?page_size=100",
        "/api/v1/data?page=3&page_size=50&sort=-observed_at",
        "/api/v1/data?coin_id=bitcoin",
        "/api/v1/data?source=csv&page_size=20&format=csv",
        "/api/v1/health",
        "/api/v1/stats",
        "/api/v1/runs?page_size=20",
        "/api/v1/rejected?page_size=20",
        "/",
        "/rejected",
    ]
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        cursor: str | None = None
        while time.monotonic() < until:
            path = rng.choice(paths)
            if cursor is not None and rng.random() < 0.2:
                path = f"/api/v1/data?cursor={cursor}"
            try:
                response = await http.get(path)
            except httpx.HTTPError as exc:
                soak.answers[0] += 1
                soak.five_xx.append(f"{path}: {type(exc).__name__}")
                continue
            soak.answers[response.status_code] += 1
            if response.status_code >= 500:
                soak.five_xx.append(f"{path}: {response.status_code} {response.text[:200]}")
            if path.startswith("/api/v1/data?page_size=100") and response.status_code == 200:
                cursor = response.json().get("next_cursor")
            await asyncio.sleep(0.15)


async def sample_rss(pid: int, soak: Soak, started: float, until: float) -> None:
    process = psutil.Process(pid)
    while time.monotonic() < until:
        soak.rss.append((time.monotonic() - started, process.memory_info().rss / 2**20))
        await asyncio.sleep(5)


async def wait_for_csv(url: str, expected: int, within: float) -> int:
    deadline = time.monotonic() + within
    conn = await asyncpg.connect(url)
    try:
        while True:
            got = int(
                await conn.fetchval("SELECT count(*) FROM unified_crypto_data WHERE source='csv'")
            )
            if got >= expected or time.monotonic() > deadline:
                return got
            await asyncio.sleep(1)
    finally:
        await conn.close()


async def read_outcome(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        runs = await conn.fetch(
            "SELECT source, status, count(*) AS n FROM etl_runs GROUP BY 1, 2 ORDER BY 1, 2"
        )
        rows = await conn.fetch(
            "SELECT source, count(*) AS n FROM unified_crypto_data GROUP BY 1 ORDER BY 1"
        )
        errors = await conn.fetch(
            "SELECT source, left(error, 90) AS error, count(*) AS n FROM etl_runs"
            " WHERE status = 'failed' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 12"
        )
        return {
            "runs": [dict(r) for r in runs],
            "running": await conn.fetchval("SELECT count(*) FROM etl_runs WHERE status='running'"),
            "rows": {r["source"]: r["n"] for r in rows},
            # every CSV row traceable to its file and line (no raw copy per row since 0015)
            "csv_lineage": await conn.fetchval("SELECT count(*) FROM csv_row_lineage"),
            "rejected_csv": await conn.fetchval(
                "SELECT count(*) FROM rejected_records WHERE source = 'csv'"
            ),
            "failures": [dict(r) for r in errors],
        }
    finally:
        await conn.close()


def spread(soak: Soak, warmup: float) -> dict[str, float]:
    after = [mb for at, mb in soak.rss if at >= warmup]
    if not after:
        return {}
    first_minute = [mb for at, mb in soak.rss if warmup <= at < warmup + 60] or after[:1]
    base = statistics.median(first_minute)
    return {
        "baseline_mb": round(base, 1),
        "min_mb": round(min(after), 1),
        "max_mb": round(max(after), 1),
        "last_mb": round(after[-1], 1),
        "max_over_baseline": round(max(after) / base - 1, 4),
        "spread": round((max(after) - min(after)) / base, 4),
    }


def start_service(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cli = Path(sys.executable).parent / "cryptoetl"
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(cli), "serve"], env={**os.environ, **env}, stdout=out, stderr=out
        )


async def soak_run(args: argparse.Namespace) -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    csv_dir = WORK / "soak-csv"
    shutil.rmtree(csv_dir, ignore_errors=True)
    csv_dir.mkdir()
    server = EmbeddedPostgres(WORK / "soak-pg")
    server_url = await asyncio.to_thread(server.start)
    admin = await asyncpg.connect(server_url)
    await admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {DB}")
    await admin.close()
    url = with_database(server_url, DB)
    upstream = await Upstream(coingecko_pages=2).start()
    soak = Soak(csv_dir, args.csv_rows)
    write_csv(soak)
    port = free_port()
    env = {
        "DATABASE_URL": url,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
        "ADMIN_TOKEN": TOKEN,
        "ENABLED_SOURCES": "coingecko,coinpaprika,csv",
        "ETL_INTERVAL_SECONDS": "1",
        "ETL_RUN_ON_STARTUP": "true",
        "COINGECKO_BASE_URL": upstream.coingecko_url,
        "COINPAPRIKA_BASE_URL": upstream.coinpaprika_url,
        "COINGECKO_PAGES": "2",
        "COINGECKO_REQUESTS_PER_MINUTE": "60000",
        "COINPAPRIKA_REQUESTS_PER_MINUTE": "60000",
        "RATE_LIMIT_DELAY": "0",
        "MAX_RETRIES": "1",
        "INITIAL_RETRY_DELAY": "0.1",
        "MAX_RETRY_DELAY": "0.5",
        "HTTP_CONNECT_TIMEOUT": "2",
        "HTTP_READ_TIMEOUT": "3",
        "CSV_FILE_PATH": str(csv_dir),
    }
    log = WORK / "soak-serve.log"
    process = start_service(env, log)
    base = f"http://127.0.0.1:{port}"
    outcome: dict[str, Any] = {}
    try:
        await asyncio.to_thread(wait_ready, f"{base}/api/v1/health", process)
        started = time.monotonic()
        until = started + args.minutes * 60
        print(f"soaking for {args.minutes} min (service pid {process.pid}, log {log})", flush=True)
        await asyncio.gather(
            inject_faults(upstream, soak, until),
            add_files(soak, args.csv_every, until),
            sample_rss(process.pid, soak, started, until),
            *(api_client(base, soak, until, seed) for seed in range(4)),
        )
        settled = await wait_for_csv(url, soak.good_rows, within=300)
        await asyncio.sleep(5)  # a few clean runs of the HTTP sources after the faults stop
        outcome["csv_loaded_before_stop"] = settled
    finally:
        await asyncio.to_thread(stop, process)
        await upstream.close()
    outcome.update(await read_outcome(url))
    await asyncio.to_thread(server.stop)
    shutil.rmtree(csv_dir, ignore_errors=True)
    shutil.rmtree(WORK / "soak-pg", ignore_errors=True)  # ~0.5 GB after 20 minutes
    return report(args, soak, outcome)


def report(args: argparse.Namespace, soak: Soak, outcome: dict[str, Any]) -> int:
    warmup = args.warmup * 60
    flat = spread(soak, warmup)
    rows = outcome["rows"]
    checks = {
        "rss flat within 10 % after warm-up": bool(flat) and flat["max_over_baseline"] <= 0.10,
        "no run left running": outcome["running"] == 0,
        "csv rows exact": rows.get("csv") == soak.good_rows
        and outcome["csv_lineage"] == soak.good_rows,
        "csv rejected exact": outcome["rejected_csv"] == soak.bad_rows,
        "coingecko rows exact": rows.get("coingecko") == GECKO_ROWS,
        "coinpaprika rows exact": rows.get("coinpaprika") == PAPRIKA_ROWS,
        "no 5xx": not soak.five_xx,
    }
    per_minute = [(round(at / 60, 1), round(mb, 1)) for at, mb in soak.rss[::12]]
    result = {
        "minutes": args.minutes,
        "warmup_minutes": args.warmup,
        "rss_per_minute": per_minute,
        "rss_after_warmup": flat,
        "csv_files": soak.files,
        "csv_good_rows": soak.good_rows,
        "csv_bad_rows": soak.bad_rows,
        "faults": dict(soak.faults),
        "api_answers": {str(k): v for k, v in sorted(soak.answers.items())},
        "five_xx": soak.five_xx[:20],
        **outcome,
        "checks": checks,
    }
    (WORK / "soak.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    print("\n".join(f"{'PASS' if ok else 'FAIL'}  {name}" for name, ok in checks.items()))
    return 0 if all(checks.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=5, help="minutes before RSS must be flat")
    parser.add_argument("--csv-every", type=float, default=15, help="seconds between new files")
    parser.add_argument("--csv-rows", type=int, default=5000)
    return asyncio.run(soak_run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
