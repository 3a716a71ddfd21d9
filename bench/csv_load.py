"""CSV load benchmark: a 1,000,000-row file through `cryptoetl etl run --source csv`.

    .venv/bin/python bench/csv_load.py [--rows 1000000] [--reps 3] [--no-kill]

Starts its own embedded PostgreSQL in a temporary directory (or uses a fresh database of its
own on DATABASE_URL's server) and writes a Kaggle-layout CSV of `--rows` rows. Per repetition,
on an empty database:

- raw COPY: 1,000,000 synthetic unified rows COPYed into an identical empty table (the same
  physical limit as `bench/ingest.py`), in this same run;
- the real command, `cryptoetl etl run --source csv`, as a subprocess: wall time, the run's own
  duration from `etl_runs`, rows/s, the peak RSS of the process (polled every 20 ms), and the
  time from start to the first committed block (the first `csv_chunks` row);
- once: the same load through the real `Pipeline` in this process, with a 10 ms ticker on its
  event loop: the longest and the 99th-percentile lag, which is how long the API sharing that
  loop could be kept waiting; and the real app on that loop probed with `GET /api/v1/health`
  every 50 ms: the probe's longest and 99th-percentile latency;
- once (unless --no-kill): the same load killed with SIGKILL half-way, then run again; the
  bench checks the exact row count and that no observation is duplicated.

Results are recorded in docs/benchmarks.md ("CSV load").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from cryptoetl.db.migrate import migrate
from ingest import raw_copy, synthetic, with_server

CRYPTOETL = str(Path(sys.executable).parent / "cryptoetl")
# Every table a run writes: each repetition starts from nothing, the asset mapping included
TABLES = (
    "unified_crypto_data",
    "raw_csv",
    "csv_chunks",
    "csv_files",
    "rejected_records",
    "etl_runs",
    "checkpoints",
    "asset_mappings",
    "asset_pins",
    "assets",
)


def write_csv(path: Path, rows: int) -> None:
    """Kaggle `coin_*.csv` layout: 2,000 coins, one row per coin per minute."""
    with path.open("w") as handle:
        handle.write("SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap\n")
        for i in range(rows):
            coin = i % 2000
            minute = i // 2000
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(1_600_000_000 + minute * 60))
            price = 1 + coin / 3 + minute / 1000
            handle.write(
                f"{i + 1},Coin {coin},C{coin},{stamp},{price * 1.01:.6f},{price * 0.99:.6f},"
                f"{price:.6f},{price:.6f},{i * 7.5:.2f},{i * 1234.5:.2f}\n"
            )


async def reset(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def counts(url: str) -> tuple[int, int, int, float]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM unified_crypto_data")
        distinct = await conn.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT coin_id, observed_at FROM unified_crypto_data) d"
        )
        running = await conn.fetchval("SELECT count(*) FROM etl_runs WHERE status = 'running'")
        seconds = await conn.fetchval(
            "SELECT extract(epoch FROM max(finished_at - started_at)) FROM etl_runs "
            "WHERE status = 'success'"
        )
        return rows, distinct, running, float(seconds or 0)
    finally:
        await conn.close()


async def etl_run(
    url: str, csv_path: Path, kill_at: int | None = None
) -> tuple[float, int, float | None]:
    """Run the command; return (wall seconds, peak RSS bytes, seconds to the first committed
    block). With `kill_at`, SIGKILL it once that many rows are committed."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CSV_FILE_PATH": str(csv_path),
        "LOG_LEVEL": "WARNING",
        "ENABLED_SOURCES": "csv",
    }
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        CRYPTOETL,
        "etl",
        "run",
        "--source",
        "csv",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    watched = psutil.Process(process.pid)
    peak = 0
    first: float | None = None
    conn = await asyncpg.connect(url)
    try:
        while process.returncode is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            if first is None and await conn.fetchval("SELECT EXISTS (SELECT FROM csv_chunks)"):
                first = time.perf_counter() - started
            if kill_at is not None:
                loaded = await conn.fetchval("SELECT coalesce(sum(accepted), 0) FROM csv_chunks")
                if loaded >= kill_at:
                    process.send_signal(signal.SIGKILL)
                    kill_at = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.02)
    finally:
        await conn.close()
    await process.wait()
    return time.perf_counter() - started, peak, first


class _LoadEnd:
    """A progress sink that notes when the source's load ended (before the asset mapping)."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    def source_started(self, source: str, run_id: int) -> None:
        return None

    def batch_loaded(self, source: str, counts: object, batches: int, label: str) -> None:
        return None

    def source_finished(self, outcome: object) -> None:
        self.ended.set()


async def loop_lag(url: str, csv_path: Path) -> dict[str, float]:
    """The real pipeline in this process with a 10 ms ticker on its loop and the real app on
    the same loop, probed with `GET /api/v1/health` every 50 ms (a request through the ASGI
    stack and the database, as a client of `cryptoetl serve` would be answered while a file
    loads): max and p99 ticker lag while the file loads, max lag including the asset mapping
    that follows, and the probe's max and p99 latency while loading, in seconds."""
    import httpx

    from cryptoetl.app import create_app
    from cryptoetl.db.pool import open_pool
    from cryptoetl.etl.pipeline import Pipeline
    from cryptoetl.models import RunTrigger
    from cryptoetl.sources import load_settings

    settings = load_settings(
        env_file=None, database_url=url, csv_file_path=str(csv_path), enabled_sources="csv"
    )
    loading: list[float] = []
    after: list[float] = []
    probes: list[float] = []
    done = asyncio.Event()
    sink = _LoadEnd()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            (after if sink.ended.is_set() else loading).append(time.perf_counter() - before - 0.01)

    async def probe(client: httpx.AsyncClient) -> None:
        while not sink.ended.is_set():
            before = time.perf_counter()
            response = await client.get("/api/v1/health")
            assert response.status_code == 200, response.text
            probes.append(time.perf_counter() - before)
            await asyncio.sleep(0.05)

    app = create_app(settings, database_url=url)
    gc.collect()
    gc.freeze()  # as the command line does before it runs the loop (`cli.main._run`)
    async with app.router.lifespan_context(app), open_pool(url) as pool:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await client.get("/api/v1/health")  # warm: the first request builds its caches
            tasks = [asyncio.create_task(ticker()), asyncio.create_task(probe(client))]
            await Pipeline(settings, pool, progress=sink).run(["csv"], RunTrigger.CLI)
            done.set()
            await asyncio.gather(*tasks)
    loading.sort()
    probes.sort()
    return {
        "max": loading[-1],
        "p99": loading[int(len(loading) * 0.99)],
        "with_mapping": max([*loading, *after]),
        "probe_max": probes[-1],
        "probe_p99": probes[int(len(probes) * 0.99)],
        "probes": len(probes),
    }


async def bench(url: str, rows: int, reps: int, kill: bool) -> None:
    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    try:
        await migrate(conn)
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    with tempfile.TemporaryDirectory(prefix="cryptoetl-csv-bench-") as tmp:
        csv_path = Path(tmp) / "coins.csv"
        write_csv(csv_path, rows)
        size_mb = csv_path.stat().st_size / 2**20
        synthetic_rows = synthetic(0, rows)
        results: list[dict[str, float]] = []
        for rep in range(reps):
            await reset(url)
            copy_conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
            try:
                copy_seconds = await raw_copy(copy_conn, synthetic_rows, 50_000)
            finally:
                await copy_conn.close()
            await reset(url)
            wall, peak, first = await etl_run(url, csv_path)
            loaded, distinct, running, run_seconds = await counts(url)
            assert loaded == distinct == rows, (loaded, distinct)
            assert running == 0
            results.append(
                {
                    "copy": copy_seconds,
                    "wall": wall,
                    "run": run_seconds,
                    "peak": float(peak),
                    "first": first or 0.0,
                }
            )
            print(
                f"rep {rep + 1}: raw COPY {rows / copy_seconds:,.0f}/s, etl run "
                f"{rows / run_seconds:,.0f}/s (wall {wall:.1f} s), peak RSS {peak / 2**20:.0f} MiB,"
                f" first block committed after {first or 0:.2f} s",
                file=sys.stderr,
                flush=True,
            )
        await reset(url)
        lag = await loop_lag(url, csv_path)
        killed = None
        if kill:
            await reset(url)
            await etl_run(url, csv_path, kill_at=rows // 2)
            partial, _, running_after_kill, _ = await counts(url)
            await etl_run(url, csv_path)
            loaded, distinct, running, _ = await counts(url)
            killed = (partial, running_after_kill, loaded, distinct, running)
    report(rows, size_mb, reps, str(version), results, killed, lag)


def report(
    rows: int,
    size_mb: float,
    reps: int,
    version: str,
    results: list[dict[str, float]],
    killed: tuple[int, int, int, int, int] | None,
    lag: dict[str, float],
) -> None:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in results)

    ratios = [r["copy"] / r["run"] for r in results]
    print(
        f"{rows:,}-row CSV ({size_mb:.0f} MiB), median of {reps}; PostgreSQL {version}; "
        f"{os.cpu_count()} cores"
    )
    print("| what | rows/s (median) | ratio to raw COPY | runs |")
    print("|---|---:|---:|---|")
    copy_runs = ", ".join(f"{rows / r['copy']:,.0f}" for r in results)
    run_runs = ", ".join(f"{rows / r['run']:,.0f}" for r in results)
    print(
        f"| raw COPY of {rows:,} unified rows | {rows / median('copy'):,.0f} | 1.00 | {copy_runs} |"
    )
    print(
        f"| `cryptoetl etl run --source csv` (the run) | {rows / median('run'):,.0f} "
        f"| {statistics.median(ratios):.2f} | {run_runs} |"
    )
    wall_runs = ", ".join(f"{rows / r['wall']:,.0f}" for r in results)
    print(f"| the same, wall clock incl. start-up | {rows / median('wall'):,.0f} | | {wall_runs} |")
    peaks = ", ".join(f"{r['peak'] / 2**20:.0f}" for r in results)
    print(
        f"peak RSS of the etl process: {median('peak') / 2**20:.0f} MiB = "
        f"{median('peak') / 1e6:.0f} MB (runs: {peaks} MiB)"
    )
    firsts = ", ".join(f"{r['first']:.2f}" for r in results)
    print(f"first block committed after {median('first'):.2f} s (runs: {firsts} s)")
    print(
        f"event loop lag while loading in process (10 ms ticker): max {lag['max'] * 1000:.0f} ms,"
        f" p99 {lag['p99'] * 1000:.0f} ms; max {lag['with_mapping'] * 1000:.0f} ms with the asset"
        " mapping after it"
    )
    print(
        f"GET /api/v1/health on the same loop while loading ({lag['probes']:.0f} probes): "
        f"max {lag['probe_max'] * 1000:.0f} ms, p99 {lag['probe_p99'] * 1000:.0f} ms"
    )
    if killed is not None:
        partial, running_after_kill, loaded, distinct, running = killed
        print(
            f"SIGKILL at {partial:,} committed rows (run left 'running': {running_after_kill}); "
            f"after the rerun: {loaded:,} rows, {distinct:,} distinct observations, "
            f"{running} runs left 'running'"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-kill", action="store_true")
    args = parser.parse_args()
    asyncio.run(with_server(lambda url: bench(url, args.rows, args.reps, not args.no_kill)))


if __name__ == "__main__":
    main()
