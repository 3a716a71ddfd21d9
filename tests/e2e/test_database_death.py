"""The embedded PostgreSQL dies under a running `cryptoetl serve` mid-load: the service starts
it again by itself, ends the interrupted run with the reason, takes the next trigger, and the
data ends exact. Also: hostile requests against the real server (memory, the request line)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.process import ServeProcess

TOKEN = "adm1n-t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROWS = 400_000


def write_csv(path: Path, rows: int) -> None:
    """`rows` observations of 1,000 coins, one a minute, in a Kaggle-like layout."""
    with path.open("w") as handle:
        handle.write("SNo,Name,Symbol,Date,Close,Volume,Marketcap\n")
        for i in range(rows):
            coin = i % 1000
            handle.write(
                f"{i + 1},Coin {coin},C{coin},{1_600_000_000 + (i // 1000) * 60},"
                f"{1 + coin / 7:.6f},{i * 3},{i * 1000}\n"
            )


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


async def poll(probe: Callable[[], Any], accept: Callable[[Any], bool], within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if accept(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.25)


@pytest.mark.slow
async def test_database_killed_mid_load_comes_back_and_the_run_is_ended(
    serve: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    csv = tmp_path / "big.csv"
    write_csv(csv, ROWS)
    data_dir = tmp_path / "state"
    served = serve(
        {
            "CRYPTOETL_DATA_DIR": str(data_dir),
            "ADMIN_TOKEN": TOKEN,
            "ENABLED_SOURCES": "csv",
            "CSV_FILE_PATH": str(csv),
            "ETL_RUN_ON_STARTUP": "false",
            "ETL_INTERVAL_SECONDS": "3600",
        },
        cwd=tmp_path,
    )
    pgdata = data_dir.resolve() / "pgdata"
    url = f"postgresql://postgres:@/cryptoetl?host={pgdata}"

    async def loaded() -> int:
        try:
            conn = await asyncpg.connect(url, timeout=2)
        except (OSError, asyncpg.PostgresError):
            return -1
        try:
            return int(await conn.fetchval("SELECT count(*) FROM unified_crypto_data"))
        finally:
            await conn.close()

    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as http:
        started = await http.post("/admin/etl/run", headers=AUTH)
        assert started.status_code == 202, started.text
        run_id = started.json()["run_ids"]["csv"]
        partial = await poll(loaded, lambda n: n >= 40_000, within=120)
        assert 40_000 <= partial < ROWS, partial

        old_pid = postmaster_pid(pgdata)
        os.kill(old_pid, signal.SIGINT)  # a "fast" shutdown: the server goes away at once
        died_at = time.monotonic()

        async def health() -> int:
            try:
                return (await http.get("/api/v1/health")).status_code
            except httpx.HTTPError:
                return -1

        assert await poll(health, lambda code: code == 503, within=10) == 503
        assert await poll(health, lambda code: code == 200, within=60) == 200
        assert postmaster_pid(pgdata) != old_pid
        assert served.process.poll() is None  # the same service, never restarted

        async def run() -> dict[str, Any]:
            body: dict[str, Any] = (await http.get(f"/api/v1/runs/{run_id}")).json()
            return body

        ended = await poll(run, lambda body: body.get("status") != "running", within=30)
        assert ended["status"] == "failed", ended
        assert "recorded late" in ended["error"], ended

        async def trigger() -> httpx.Response:
            return await http.post("/admin/etl/run", headers=AUTH)

        again = await poll(trigger, lambda r: r.status_code == 202, within=60)
        assert again.status_code == 202, again.text
        assert time.monotonic() - died_at < 60
        second = again.json()["run_ids"]["csv"]

        async def second_run() -> dict[str, Any]:
            body: dict[str, Any] = (await http.get(f"/api/v1/runs/{second}")).json()
            return body

        done = await poll(second_run, lambda body: body["status"] != "running", within=240)
        assert done["status"] == "success", done
    assert await loaded() == ROWS
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM raw_csv") == ROWS
        assert await conn.fetchval("SELECT count(*) FROM etl_runs WHERE status = 'running'") == 0
    finally:
        await conn.close()
    log = served.log_text()
    assert "embedded_postgres_died" in log
    assert "fast shutdown" in log  # the server log's last line, quoted as the reason
    assert "embedded_postgres_restarted" in log
