"""API bench: a real `cryptoetl serve` on 1,000,000 unified rows, driven over loopback.

    .venv/bin/python bench/api.py [--rows 1000000] [--duration 5] [--rounds 3] [--connections 32]

What it does, all in one run (the machine is shared and noisy, so only figures from the same
run are compared):
1. starts an embedded PostgreSQL in `bench/.work/` (kept between runs; the rows are reloaded
   only when their number differs), migrates it, loads the rows with `generate_series`
   (two sources, 2,000 coins, one observation per coin per source every 5 minutes, in time
   order as the ETL writes them), then VACUUM ANALYZE;
2. starts the floor (`bench/floor_app.py`: FastAPI + uvicorn returning page 1's bytes from
   memory) and `cryptoetl serve` three times: as shipped (response cache on, an access log line
   per request), without the cache (`API_CACHE_MB=0`: every page computed per request), and
   with the cache but `LOG_LEVEL=WARNING` (no access log), to show what each costs;
3. drives each with wrk (`apt-get install wrk`; an aiohttp client when wrk is absent) at
   `--connections` connections: `/data` page 1 (100 rows), a `coin_id` filter, a deep page by
   cursor (the cursor after row ~900,000), and the floor;
   each scenario runs `--rounds` times, in turns with all the others, and the medians are
   reported;
4. prints requests/s, p50 and p99 latency, errors, and the ratios the issue sets as goals:
   page 1 / floor throughput (>= 0.5), deep cursor / page 1 p50 (<= 1.2), coin filter / page 1
   p50 (<= 1.5).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
BENCH_DB = "cryptoetl_bench"
COINS = 2000
SOURCES = ("coingecko", "coinpaprika")
COIN = "coin-0042"

sys.path.insert(0, str(ROOT / "src"))

from cryptoetl.db.embedded import EmbeddedPostgres  # noqa: E402
from cryptoetl.db.migrate import migrate  # noqa: E402
from cryptoetl.db.server import ensure_database  # noqa: E402


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- data ---------------------------------------------------------------------------------------
async def load(url: str, rows: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        have = await conn.fetchval("SELECT coalesce(sum(row_count), 0) FROM source_stats")
        if have == rows:
            print(f"{rows:,} rows already loaded", file=sys.stderr)
            return
        await conn.execute("TRUNCATE unified_crypto_data")
        per_step = COINS * len(SOURCES)
        steps = rows // per_step
        started = time.perf_counter()
        chunk = 50
        for first in range(0, steps, chunk):
            last = min(first + chunk, steps) - 1
            await conn.execute(
                """
                INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, market_cap,
                    volume_24h, source, observed_at, ingested_at, run_id)
                SELECT 'coin-' || lpad(c::text, 4, '0'), 'Coin ' || c, 'C' || c,
                       round((1000.0 / c + step * 0.01)::numeric, 6)::float8,
                       CASE WHEN c % 50 = 0 THEN NULL ELSE 1e9 / c + step END,
                       1e7 / c + step * 3,
                       s.source,
                       timestamptz '2025-01-01' + step * interval '5 minutes',
                       timestamptz '2025-01-01' + step * interval '5 minutes' + interval '7 s',
                       step + 1
                FROM generate_series($1::int, $2::int) AS step
                CROSS JOIN unnest($3::text[]) AS s(source)
                CROSS JOIN generate_series(1, $4::int) AS c
                ORDER BY step, s.source, c
                """,
                first,
                last,
                list(SOURCES),
                COINS,
            )
        loaded = int(await conn.fetchval("SELECT sum(row_count) FROM source_stats"))
        elapsed = time.perf_counter() - started
        print(f"loaded {loaded:,} rows in {elapsed:.1f} s", file=sys.stderr)
        await conn.execute("VACUUM ANALYZE unified_crypto_data")
    finally:
        await conn.close()


# -- processes ----------------------------------------------------------------------------------
def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout} s")


def start_serve(
    database_url: str, log: Path, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`cryptoetl serve` on a free port with no start-up run, plus `settings`; once healthy."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "LOG_FORMAT": "json",
        "ETL_RUN_ON_STARTUP": "false",
        **settings,
    }
    cli = Path(sys.executable).parent / "cryptoetl"
    with log.open("wb") as out:
        process = subprocess.Popen([str(cli), "serve"], env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/api/v1/health", process)
    return process, base


def start_floor(body: bytes) -> tuple[subprocess.Popen[bytes], str]:
    body_file = WORK / "page1.json"
    body_file.write_bytes(body)
    port = free_port()
    floor = str(ROOT / "bench" / "floor_app.py")
    process = subprocess.Popen([sys.executable, floor, str(port), str(body_file)])
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/api/v1/data", process)
    return process, base


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- load generation ----------------------------------------------------------------------------
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _find(pattern: str, out: str) -> str:
    match = re.search(pattern, out)
    if match is None:
        raise ValueError(f"no {pattern!r} in wrk output:\n{out}")
    return match.group(1)


def warm_wrk(url: str, connections: int) -> None:
    subprocess.run(["wrk", "-t2", f"-c{connections}", "-d2s", url], check=True, capture_output=True)


def run_wrk(name: str, url: str, duration: int, connections: int) -> Result:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    p50 = _ms(_find(r"\s50%\s+(\S+)", out))
    p99 = _ms(_find(r"\s99%\s+(\S+)", out))
    total = int(_find(r"(\d+) requests in", out))
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(g) for g in match.groups())
    return Result(name, rps, p50, p99, total, errors)


async def _client_load(url: str, duration: float, connections: int) -> tuple[list[float], int]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
                    if response.status >= 400:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return latencies, errors


def warm_client(url: str, connections: int) -> None:
    asyncio.run(_client_load(url, 2, connections))


def run_client(name: str, url: str, duration: int, connections: int) -> Result:
    latencies, errors = asyncio.run(_client_load(url, duration, connections))
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Result(name, len(latencies) / duration, p50, p99, len(latencies), errors)


# -- the run ------------------------------------------------------------------------------------
def scenarios(base: str) -> dict[str, str]:
    deep = httpx.get(f"{base}/api/v1/data", params={"page": 9000}, timeout=120).json()
    assert deep["next_cursor"], "no cursor after page 9000: too few rows?"
    return {
        "page 1": f"{base}/api/v1/data",
        "coin filter": f"{base}/api/v1/data?coin_id={COIN}",
        "deep cursor": f"{base}/api/v1/data?cursor={deep['next_cursor']}",
    }


def table(results: list[Result]) -> str:
    lines = [
        "| scenario | req/s | p50 ms | p99 ms | requests | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.requests:,} "
            f"| {r.errors} |"
        )
    return "\n".join(lines)


def ratios(label: str, by: dict[str, Result], floor: Result) -> str:
    page1, coin, deep = by["page 1"], by["coin filter"], by["deep cursor"]
    return (
        f"{label}: page 1 / floor throughput = {page1.rps / floor.rps:.2f} (goal >= 0.5); "
        f"deep cursor / page 1 p50 = {deep.p50_ms / page1.p50_ms:.2f} (goal <= 1.2); "
        f"coin filter / page 1 p50 = {coin.p50_ms / page1.p50_ms:.2f} (goal <= 1.5)"
    )


def median_result(runs: list[Result]) -> Result:
    return Result(
        runs[0].name,
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.requests for r in runs),
        sum(r.errors for r in runs),
    )


CONFIGURATIONS = (
    ("cached", 32, "INFO"),
    ("uncached", 0, "INFO"),
    ("cached, no access log", 32, "WARNING"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    wrk = shutil.which("wrk") is not None
    drive, warm = (run_wrk, warm_wrk) if wrk else (run_client, warm_client)
    print(f"load generator: {'wrk' if wrk else 'aiohttp client'}", file=sys.stderr)

    server = EmbeddedPostgres(WORK / "pg")
    processes: list[subprocess.Popen[Any]] = []
    try:
        url = asyncio.run(ensure_database(server.start(), BENCH_DB))
        asyncio.run(load(url, args.rows))
        # Every server runs at once (idle ones cost nothing) and the scenarios take turns,
        # round after round, so a noisy neighbour hits all of them alike.
        targets: dict[str, str] = {}
        for label, cache_mb, log_level in CONFIGURATIONS:
            log = WORK / f"serve-{label.replace(' ', '').replace(',', '-')}.log"
            serve, base = start_serve(url, log, API_CACHE_MB=str(cache_mb), LOG_LEVEL=log_level)
            processes.append(serve)
            for name, target in scenarios(base).items():
                targets[f"{name} ({label})"] = target
        floor, floor_base = start_floor(httpx.get(targets["page 1 (cached)"]).content)
        processes.append(floor)
        targets = {"floor": f"{floor_base}/api/v1/data", **targets}
        for target in targets.values():
            warm(target, args.connections)
        runs: dict[str, list[Result]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, target in targets.items():
                runs[name].append(drive(name, target, args.duration, args.connections))
        results = {name: median_result(items) for name, items in runs.items()}
        print(
            f"medians of {args.rounds} rounds of {args.duration} s, {args.connections} "
            f"connections, {args.rows:,} rows"
        )
        print(table(list(results.values())))
        print()
        floor_result = results["floor"]
        for label, _, _ in CONFIGURATIONS:
            by = {
                name: results[f"{name} ({label})"]
                for name in ("page 1", "coin filter", "deep cursor")
            }
            print("- " + ratios(label, by, floor_result))
    finally:
        for process in processes:
            stop(process)
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
