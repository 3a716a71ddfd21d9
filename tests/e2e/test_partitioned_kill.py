"""Exactly once across partitions: a CSV whose chunks each reach into several time partitions
(some not made yet) is killed with SIGKILL mid-load and resumed; every line is stored once,
nothing lands in the DEFAULT partition, and the partitions made on demand stay coarse for old
time. And `cryptoetl maintain` as a real subprocess."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cryptoetl.db import partitions
from cryptoetl.db.pool import Pool
from tests.support.process import CRYPTOETL, clean_env, etl, sigkill_when, start_etl

ROWS = 240_000
COINS = 200
STEP = timedelta(hours=6)  # 1,200 steps: about 300 days of history, the last one an hour ago


def write_csv(path: Path, end: datetime) -> None:
    steps = ROWS // COINS
    start = end - (steps - 1) * STEP
    with path.open("w") as handle:
        handle.write("SNo,Name,Symbol,Date,Close,Volume,Marketcap\n")
        for i in range(ROWS):
            coin, step = i % COINS, i // COINS
            when = int((start + step * STEP).timestamp())
            handle.write(f"{i + 1},Coin {coin},K{coin},{when},{1 + coin / 3:.4f},{i},{i * 10}\n")


@pytest.mark.slow
async def test_kill_9_across_partitions_then_resume_gives_exact_rows(
    db_url: str, pool: Pool, tmp_path: Path
) -> None:
    path = tmp_path / "history.csv"
    now = datetime.now(UTC).replace(microsecond=0)
    write_csv(path, now - timedelta(hours=1))
    env = clean_env(DATABASE_URL=db_url, CSV_FILE_PATH=str(path), LOG_LEVEL="WARNING")
    async with pool.acquire() as conn:
        partitions_before = len(await partitions.list_partitions(conn, "unified_crypto_data"))

    async def a_quarter_in() -> bool:
        return bool(await pool.fetchval("SELECT count(*) >= 15000 FROM unified_crypto_data"))

    process = await start_etl(env, "--source", "csv")
    await sigkill_when(process, a_quarter_in, within=60)
    partial = await pool.fetchval("SELECT count(*) FROM unified_crypto_data")
    assert 15_000 <= partial < ROWS
    async with pool.acquire() as conn:
        made = len(await partitions.list_partitions(conn, "unified_crypto_data"))
    assert made > partitions_before  # the killed run had made partitions for its chunks

    rerun = await etl(env, "--source", "csv")

    assert rerun.code == 0, rerun.stderr
    assert await pool.fetchval("SELECT count(*) FROM unified_crypto_data") == ROWS
    assert await pool.fetchval("SELECT count(*) FROM csv_row_lineage") == ROWS
    distinct = await pool.fetchval(
        "SELECT count(*) FROM (SELECT DISTINCT coin_id, observed_at FROM unified_crypto_data) d"
    )
    assert distinct == ROWS
    assert await pool.fetchval("SELECT count(*) FROM unified_crypto_data_default") == 0
    # every unified row links to its file and line, each line once
    lines = await pool.fetchval("SELECT count(DISTINCT line_no) FROM csv_row_lineage")
    assert lines == ROWS
    async with pool.acquire() as conn:
        spread = await pool.fetchval("SELECT count(DISTINCT tableoid) FROM unified_crypto_data")
        assert spread >= 5  # the file really spans partitions
        assert len(await partitions.list_partitions(conn, "unified_crypto_data")) < 40


async def test_maintain_command_reports_and_is_recorded(db_url: str, pool: Pool) -> None:
    """`cryptoetl maintain` prints each step and the bytes per observation, exits 0, and its
    run is recorded as source `maintenance`."""
    await pool.execute(
        "INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id)"
        " SELECT 'c' || i, i, 'csv', now() - i * interval '1 minute', 0"
        " FROM generate_series(1, 500) AS i"
    )
    env = clean_env(DATABASE_URL=db_url, LOG_LEVEL="WARNING", RAW_RETENTION_DAYS="7")
    process = await asyncio.create_subprocess_exec(
        CRYPTOETL,
        "maintain",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert [line.split(":")[0] for line in lines[:5]] == [
        "partitions_ahead",
        "retire_raw",
        "thin",
        "compact_rollups",
        "sizes",
    ]
    assert "500 observations; per observation: unified" in lines[4]
    assert lines[-1].endswith(": success")
    run = await pool.fetchrow("SELECT source, trigger, status, report FROM etl_runs")
    assert run is not None
    assert (run["source"], run["trigger"], run["status"]) == ("maintenance", "cli", "success")
    assert len(run["report"]) == 5
