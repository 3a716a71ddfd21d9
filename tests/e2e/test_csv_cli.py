"""`cryptoetl etl run --source csv` as a real subprocess: kill -9 mid-file, then resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryptoetl.db.pool import Pool
from tests.support.process import clean_env, etl, sigkill_when, start_etl

ROWS = 120_000


def write_big_csv(path: Path, rows: int) -> None:
    """`rows` observations of 500 coins, one a minute, in a Kaggle-like layout."""
    with path.open("w") as handle:
        handle.write("SNo,Name,Symbol,Date,Close,Volume,Marketcap\n")
        for i in range(rows):
            coin = i % 500
            handle.write(
                f"{i + 1},Coin {coin},C{coin},{1_600_000_000 + (i // 500) * 60},"
                f"{1 + coin / 7:.6f},{i * 3},{i * 1000}\n"
            )


@pytest.mark.slow
async def test_kill_9_mid_file_then_rerun_gives_exact_rows(
    db_url: str, pool: Pool, tmp_path: Path
) -> None:
    """SIGKILL while a 120,000-row file loads; the rerun resumes at the last committed chunk
    and ends with exactly one row per line: no duplicate, no loss, nothing left running."""
    path = tmp_path / "big.csv"
    write_big_csv(path, ROWS)
    # blocks of 64 KiB (about 1,400 rows): many commits to be killed between
    env = clean_env(
        DATABASE_URL=db_url, CSV_FILE_PATH=str(path), LOG_LEVEL="WARNING", CSV_BLOCK_BYTES="65536"
    )

    async def a_sixth_in() -> bool:
        return bool(await pool.fetchval("SELECT count(*) >= 20000 FROM unified_crypto_data"))

    # output is small: a few progress lines at WARNING
    process = await start_etl(env, "--source", "csv")
    await sigkill_when(process, a_sixth_in, within=30)
    killed = await pool.fetchrow("SELECT id, status FROM etl_runs")
    assert killed is not None
    assert killed["status"] == "running"
    partial = await pool.fetchval("SELECT count(*) FROM unified_crypto_data")
    assert 20_000 <= partial < ROWS
    cursor = await pool.fetchval("SELECT cursor FROM checkpoints WHERE source = 'csv'")
    state = cursor["files"][str(path)]
    assert state["line"] == partial + 2  # the cursor covers exactly the committed rows

    rerun = await etl(env, "--source", "csv")

    assert rerun.code == 0, rerun.stderr
    assert "success" in rerun.stdout
    assert await pool.fetchval("SELECT count(*) FROM unified_crypto_data") == ROWS
    assert await pool.fetchval("SELECT count(*) FROM csv_row_lineage") == ROWS
    distinct = await pool.fetchval(
        "SELECT count(*) FROM (SELECT DISTINCT coin_id, observed_at FROM unified_crypto_data) d"
    )
    assert distinct == ROWS
    lines = await pool.fetchrow("SELECT min(line_no), max(line_no) FROM csv_row_lineage")
    assert lines is not None
    assert tuple(lines) == (2, ROWS + 1)
    resumed = await pool.fetchval("SELECT fetched FROM etl_runs WHERE id <> $1", killed["id"])
    assert resumed == ROWS - partial  # it did not read the committed rows again
    assert await pool.fetchval("SELECT count(*) FROM etl_runs WHERE status = 'running'") == 0
    dead = await pool.fetchval("SELECT status FROM etl_runs WHERE id = $1", killed["id"])
    assert dead == "failed"


async def test_progress_shows_rows_and_rate(db_url: str, tmp_path: Path) -> None:
    """Off a terminal, each committed chunk prints its rows and rows/s on stderr."""
    path = tmp_path / "small.csv"
    write_big_csv(path, 12_000)
    env = clean_env(
        DATABASE_URL=db_url, CSV_FILE_PATH=str(path), LOG_LEVEL="WARNING", CSV_BLOCK_BYTES="200000"
    )
    finished = await etl(env, "--source", "csv")
    assert finished.code == 0, finished.stderr
    progress = [line for line in finished.stderr.splitlines() if "rows/s" in line]
    assert len(progress) == 4  # one per block of at most 200,000 bytes (the file: 639,327)
    assert progress[-1].startswith("csv: small.csv lines 11294-12001: 12000 rows (")
