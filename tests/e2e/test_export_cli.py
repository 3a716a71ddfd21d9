"""`cryptoetl export --out DIR` as a real subprocess on a database the real pipeline loaded,
read back with DuckDB and compared with what `/api/v1/data` serves."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from tests.support.dashboard_data import CSV_FIXTURES, fixture_settings, load_fixtures
from tests.support.process import CRYPTOETL, clean_env
from tests.support.upstream import Upstream

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def export(db_url: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        CRYPTOETL,
        "export",
        *args,
        env=clean_env(DATABASE_URL=db_url, LOG_LEVEL="WARNING"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def parquet_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.parquet"))


def duck(out: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        source = f"read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
        conn.execute(f"CREATE VIEW history AS SELECT * FROM {source}")  # noqa: S608
        rows: list[tuple[Any, ...]] = conn.execute(sql, list(params)).fetchall()
        return rows


# A few of the CSV fixtures (the whole set spans 12 years: 4,475 day files, minutes on a busy
# disk): two one-day snapshots, one coin's 275 days, and the Excel-mangled file that
# `load_fixtures` expects to be quarantined.
CSV_FILES = (
    "csv_coingecko_markets_pandas_export_250_2024-11-17.csv",
    "csv_coinmarketcap_v1_ticker_snapshot_2017-12-06.csv",
    "csv_kaggle_coin_Aave.csv",
    "csv_kaggle_coin_Bitcoin_EXCEL_MANGLED.csv",
)


@pytest.fixture
async def loaded(
    source_settings: Callable[..., Settings],
    db_url: str,
    pool: Pool,
    upstream: Upstream,
    tmp_path: Path,
) -> Settings:
    """The database after the real pipeline loaded both HTTP sources and `CSV_FILES`."""
    (tmp_path / "csv").mkdir()
    for name in CSV_FILES:
        shutil.copy(CSV_FIXTURES / name, tmp_path / "csv" / name)
    settings = fixture_settings(source_settings, db_url, tmp_path)
    await load_fixtures(settings, pool, upstream)
    return settings


async def test_export_equals_what_the_api_serves_and_a_second_export_changes_nothing(
    loaded: Settings, pool: Pool, db_url: str, make_client: MakeClient, tmp_path: Path
) -> None:
    out = tmp_path / "history"
    code, stdout, stderr = await export(db_url, "--out", str(out))
    assert code == 0, stderr
    per_source = dict(duck(out, "SELECT source, count(*) FROM history GROUP BY source"))
    async with make_client(loaded) as client:
        totals = {}
        for source in ("coingecko", "coinpaprika", "csv"):
            response = await client.get("/api/v1/data", params={"source": source})
            assert response.status_code == 200
            totals[source] = response.json()["total"]
    assert per_source == totals
    assert all(n > 0 for n in totals.values())
    assert f"exported {sum(totals.values()):,} rows" in stdout

    # per source and UTC day, as the database counts them
    in_db = await pool.fetch(
        "SELECT source, (observed_at AT TIME ZONE 'UTC')::date AS day, count(*) "
        "FROM unified_crypto_data GROUP BY 1, 2 ORDER BY 1, 2"
    )
    by_day = duck(out, "SELECT source, date, count(*) FROM history GROUP BY 1, 2 ORDER BY 1, 2")
    assert by_day == [tuple(row) for row in in_db]

    # sampled observations: the same price for the same (source, coin_id, observed_at)
    sample = await pool.fetch(
        "SELECT source, coin_id, observed_at, price_usd FROM unified_crypto_data "
        "ORDER BY md5(id::text) LIMIT 25"
    )
    exported = {
        (source, coin_id, observed_at): price
        for source, coin_id, observed_at, price in duck(
            out, "SELECT source, coin_id, observed_at, price_usd FROM history"
        )
    }
    for row in sample:
        key = (row["source"], row["coin_id"], row["observed_at"])
        assert exported[key] == row["price_usd"], dict(row)

    files_before = {p: p.stat().st_mtime_ns for p in parquet_files(out)}
    code, stdout, stderr = await export(db_url, "--out", str(out))
    assert code == 0, stderr
    assert stdout.startswith("exported 0 rows in 0 day files")
    assert dict(duck(out, "SELECT source, count(*) FROM history GROUP BY source")) == totals
    assert {p: p.stat().st_mtime_ns for p in parquet_files(out)} == files_before


async def test_bad_arguments_are_one_line_and_exit_2(db_url: str, tmp_path: Path) -> None:
    code, _, stderr = await export(db_url, "--out", str(tmp_path), "--since", "yesterday")
    assert code == 2
    assert "'yesterday' is not a date (YYYY-MM-DD) or an ISO 8601 time" in stderr
    code, _, stderr = await export(
        db_url, "--out", str(tmp_path), "--since", "2025-02-01", "--until", "2025-01-01"
    )
    assert (code, stderr.strip()) == (2, "cryptoetl: --since is after --until")
    (tmp_path / "a-file").write_text("not a directory")
    code, _, stderr = await export(db_url, "--out", str(tmp_path / "a-file"))
    assert (code, stderr.strip()) == (
        1,
        f"cryptoetl: cannot write the export to {tmp_path / 'a-file'}: File exists",
    )
    assert parquet_files(tmp_path) == []
