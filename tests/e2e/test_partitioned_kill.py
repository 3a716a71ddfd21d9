"""Exactly once across partitions: a CSV whose chunks each reach into several time partitions
(some not made yet) is killed with SIGKILL mid-load and resumed; every line is stored once,
nothing lands in a DEFAULT partition, and the partitions made on demand stay coarse for old time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cryptoetl.db import partitions
from cryptoetl.db.pool import Pool
from tests.support.process import clean_env, etl, sigkill_when, start_etl

ROWS = 60_000
COINS = 50
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
        return bool(await pool.fetchval("SELECT count(*) >= 15000 FROM raw_csv"))

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
    assert await pool.fetchval("SELECT count(*) FROM raw_csv") == ROWS
    distinct = await pool.fetchval(
        "SELECT count(*) FROM (SELECT DISTINCT coin_id, observed_at FROM unified_crypto_data) d"
    )
    assert distinct == ROWS
    assert await pool.fetchval("SELECT count(*) FROM unified_crypto_data_default") == 0
    assert await pool.fetchval("SELECT count(*) FROM raw_csv_default") == 0
    # every unified row links to its raw line, both live
    linked = await pool.fetchval(
        "SELECT count(*) FROM unified_crypto_data u JOIN raw_csv r ON r.id = u.raw_id"
    )
    assert linked == ROWS
    async with pool.acquire() as conn:
        spread = await pool.fetchval("SELECT count(DISTINCT tableoid) FROM unified_crypto_data")
        assert spread >= 5  # the file really spans partitions
        assert len(await partitions.list_partitions(conn, "unified_crypto_data")) < 40
