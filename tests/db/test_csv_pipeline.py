"""CSV files through the real pipeline and database: counts, values, quarantine, re-runs."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cryptoetl.config import Settings
from cryptoetl.db import partitions
from cryptoetl.db.pool import Pool
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunStatus, RunTrigger, SourceOutcome
from tests.support import FIXTURES as TEST_FIXTURES
from tests.support import REPO

FIXTURES = TEST_FIXTURES / "csv"
MANGLED = "csv_kaggle_coin_Bitcoin_EXCEL_MANGLED.csv"
ROWS = {
    "csv_all_currencies_multi_coin.csv": 4502,
    "csv_coin_Bitcoin_lowercase_variant_2020-2025.csv": 1792,
    "csv_coingecko_markets_pandas_export_250_2024-11-17.csv": 250,
    "csv_coinmarketcap_v1_ticker_snapshot_2017-12-06.csv": 1326,
    "csv_cryptodatadownload_Coinbase_BTCUSD_d.csv": 2087,
    "csv_kaggle_bitcoin_price_old_layout.csv": 1760,
    "csv_kaggle_coin_Aave.csv": 275,
    "csv_kaggle_coin_Ethereum.csv": 2160,
    "csv_kaggle_coin_Tether.csv": 2318,
    "csv_kaggle_coin_XRP.csv": 2893,
    "csv_kaggle_crypto-markets_subset_dmy_dates.csv": 29999,
}


async def run_csv(settings: Settings, pool: Pool) -> SourceOutcome:
    (outcome,) = await Pipeline(settings, pool).run(["csv"], RunTrigger.CLI)
    return outcome


async def counts(pool: Pool) -> tuple[int, int, int]:
    return (
        await pool.fetchval("SELECT coalesce(sum(accepted), 0) FROM csv_chunks"),
        await pool.fetchval("SELECT count(*) FROM unified_crypto_data WHERE source = 'csv'"),
        await pool.fetchval("SELECT count(*) FROM rejected_records WHERE source = 'csv'"),
    )


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    target = tmp_path / "csv"
    shutil.copytree(FIXTURES, target)
    return target


async def test_the_twelve_real_files_load_with_their_counts(
    make_settings: Callable[..., Settings], pool: Pool, csv_dir: Path
) -> None:
    """Every well-formed row of every file is stored raw; the mangled file is quarantined."""
    outcome = await run_csv(make_settings(csv_file_path=str(csv_dir)), pool)
    assert outcome.status is RunStatus.PARTIAL
    assert outcome.error == "2991 records were rejected"
    assert outcome.counts.fetched == sum(ROWS.values()) + 2991
    assert outcome.counts.rejected == 2991
    per_file = {
        Path(row["path"]).name: row["n"]
        for row in await pool.fetch(
            "SELECT f.path, sum(c.accepted) AS n FROM csv_chunks c "
            "JOIN csv_files f ON f.id = c.file_id GROUP BY 1 HAVING sum(c.accepted) > 0"
        )
    }
    assert per_file == ROWS
    # overlapping files (three Bitcoin histories at midnight) share observations
    unified = await pool.fetchval("SELECT count(*) FROM unified_crypto_data")
    assert outcome.counts.inserted + outcome.counts.updated + outcome.counts.unchanged == sum(
        ROWS.values()
    )
    assert unified == outcome.counts.inserted
    distinct = await pool.fetchval(
        "SELECT count(DISTINCT (coin_id, observed_at)) FROM unified_crypto_data"
    )
    assert distinct == unified
    # history back to 2013 lands in its own (coarse) partitions, none in the DEFAULT one
    async with pool.acquire() as conn:
        assert await partitions.default_rows(conn) == 0


async def test_loaded_values_match_the_files(
    make_settings: Callable[..., Settings], pool: Pool, csv_dir: Path
) -> None:
    """Spot checks against the files, through lineage (file and line, no raw copy)."""
    await run_csv(make_settings(csv_file_path=str(csv_dir)), pool)
    eth = await pool.fetchrow(
        "SELECT u.price_usd, u.market_cap, u.volume_24h, u.symbol, l.line_no, l.file_path "
        "FROM unified_crypto_data u JOIN csv_row_lineage l ON l.unified_id = u.id "
        "WHERE u.coin_id = 'ethereum' AND u.observed_at = '2015-08-08 23:59:59+00'"
    )
    assert eth is not None
    assert (eth["price_usd"], eth["market_cap"], eth["volume_24h"]) == (
        0.7533249855041504,
        45486894.2408,
        674188.0,
    )
    assert eth["line_no"] == 2
    assert Path(eth["file_path"]).name == "csv_kaggle_coin_Ethereum.csv"
    assert await pool.fetchval("SELECT count(*) FROM raw_csv") == 0  # no jsonb double write
    # the old Kaggle layout and the D/M/YYYY file both hold Bitcoin on 2018-02-20: the same
    # observation, stored once; both raw rows are kept
    old = await pool.fetchrow(
        "SELECT price_usd, volume_24h FROM unified_crypto_data "
        "WHERE coin_id = 'bitcoin' AND observed_at = '2018-02-20 00:00:00+00'"
    )
    assert old is not None
    assert (old["price_usd"], old["volume_24h"]) == (11403.7, 9926540000.0)
    # a kept file's line is read back from the byte offsets of its committed chunk
    chunk = await pool.fetchrow(
        "SELECT f.path, c.first_line, c.start_offset, c.end_offset FROM csv_chunks c "
        "JOIN csv_files f ON f.id = c.file_id "
        "WHERE f.path LIKE '%old_layout.csv' AND c.first_line <= 2 AND c.last_line >= 2"
    )
    assert chunk is not None
    kept = Path(chunk["path"]).read_bytes()  # noqa: ASYNC240 - a small file, in a test
    lines = kept[chunk["start_offset"] : chunk["end_offset"]].splitlines()
    assert lines[2 - chunk["first_line"]] == (
        b'"Feb 20, 2018",11231.80,11958.50,11231.80,11403.70,"9,926,540,000","189,536,000,000"'
    )
    dmy = await pool.fetchval(
        "SELECT price_usd FROM unified_crypto_data "
        "WHERE coin_id = 'decred' AND observed_at = '2017-09-22 00:00:00+00'"
    )
    assert dmy == 31.13


async def test_the_mangled_file_is_quarantined_and_no_absurd_price_stored(
    make_settings: Callable[..., Settings], pool: Pool, csv_dir: Path
) -> None:
    """Every ambiguous row is in rejected_records with file, line, raw line and reason."""
    await run_csv(make_settings(csv_file_path=str(csv_dir)), pool)
    rows = await pool.fetch(
        "SELECT file, line_no, raw, reason, locator FROM rejected_records ORDER BY line_no"
    )
    assert len(rows) == 2991
    first = rows[0]
    assert Path(first["file"]).name == MANGLED
    assert first["line_no"] == 2
    assert first["locator"] == f"{MANGLED}:2"
    assert first["raw"].startswith("1,Bitcoin,BTC,29-04-13 23:59,14.748.800.659.179.600")
    assert "two-digit year" in first["reason"]
    assert "several dots" in first["reason"]
    # Bitcoin never closed above 70,000 USD before July 2021: no mangled value got in
    highest = await pool.fetchval(
        "SELECT max(price_usd) FROM unified_crypto_data "
        "WHERE coin_id = 'bitcoin' AND observed_at < '2021-07-07'"
    )
    assert 60_000 < highest < 70_000


async def test_rerun_over_unchanged_files_reads_and_inserts_nothing(
    make_settings: Callable[..., Settings], pool: Pool, csv_dir: Path
) -> None:
    """The second run skips every file: nothing fetched, nothing written, and it succeeds."""
    settings = make_settings(csv_file_path=str(csv_dir))
    await run_csv(settings, pool)
    before = await counts(pool)
    again = await run_csv(settings, pool)
    assert again.status is RunStatus.SUCCESS
    assert again.counts.fetched == 0
    assert again.counts.inserted == 0
    assert await counts(pool) == before


async def test_an_appended_file_loads_only_its_new_rows(
    make_settings: Callable[..., Settings], pool: Pool, tmp_path: Path
) -> None:
    """Append two rows: the next run fetches two rows and inserts two."""
    path = tmp_path / "btc.csv"
    path.write_text("Name,Date,Close\nBitcoin,2020-01-01,1\nBitcoin,2020-01-02,2\n")
    settings = make_settings(csv_file_path=str(path))
    first = await run_csv(settings, pool)
    assert (first.status, first.counts.inserted) == (RunStatus.SUCCESS, 2)
    with path.open("a") as handle:
        handle.write("Bitcoin,2020-01-03,3\nBitcoin,2020-01-04,4\n")
    second = await run_csv(settings, pool)
    assert (second.counts.fetched, second.counts.inserted) == (2, 2)
    lines = [
        r["line_no"] for r in await pool.fetch("SELECT line_no FROM csv_row_lineage ORDER BY 1")
    ]
    assert lines == [2, 3, 4, 5]


async def test_a_rewritten_file_is_read_again_and_stays_idempotent(
    make_settings: Callable[..., Settings], pool: Pool, tmp_path: Path
) -> None:
    """Rewrite with one changed price: one row updated, no duplicate observation."""
    path = tmp_path / "btc.csv"
    path.write_text("Name,Date,Close\nBitcoin,2020-01-01,1\nBitcoin,2020-01-02,2\n")
    settings = make_settings(csv_file_path=str(path))
    await run_csv(settings, pool)
    await asyncio.sleep(0.01)
    path.write_text("Name,Date,Close\nBitcoin,2020-01-01,1\nBitcoin,2020-01-02,5\n")
    second = await run_csv(settings, pool)
    assert (second.counts.updated, second.counts.unchanged, second.counts.inserted) == (1, 1, 0)
    prices = [
        r["price_usd"]
        for r in await pool.fetch("SELECT price_usd FROM unified_crypto_data ORDER BY observed_at")
    ]
    assert prices == [1.0, 5.0]


async def test_a_missing_path_fails_the_source_with_the_reason(
    make_settings: Callable[..., Settings], pool: Pool, tmp_path: Path
) -> None:
    """CSV_FILE_PATH that matches nothing: failed, with the path in the error."""
    outcome = await run_csv(make_settings(csv_file_path=str(tmp_path / "nope.csv")), pool)
    assert outcome.status is RunStatus.FAILED
    assert "no CSV file matches" in (outcome.error or "")
    status = await pool.fetchval("SELECT status FROM checkpoints WHERE source = 'csv'")
    assert status == "failed"


async def test_the_event_loop_keeps_answering_during_a_large_load(
    make_settings: Callable[..., Settings], pool: Pool, tmp_path: Path
) -> None:
    """While 60,000 rows load, a 10 ms ticker on the same loop is never held up for long."""
    path = tmp_path / "big.csv"
    with path.open("w") as handle:
        handle.write("id,Date,Close,Volume\n")
        for i in range(60_000):
            handle.write(f"coin-{i % 100},{1_600_000_000 + i * 60},{1 + i % 7}.5,{i}\n")
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - started - 0.01)

    task = asyncio.create_task(ticker())
    outcome = await run_csv(make_settings(csv_file_path=str(path)), pool)
    done.set()
    await task
    assert outcome.counts.inserted == 60_000
    assert max(lags) < 1.0, f"the loop was held for {max(lags):.2f} s"


async def test_the_shipped_sample_loads_cleanly(
    make_settings: Callable[..., Settings], pool: Pool
) -> None:
    """data/sample.csv (the default CSV_FILE_PATH) loads every row: four coins, 60 days each."""
    sample = REPO / "data" / "sample.csv"
    outcome = await run_csv(make_settings(csv_file_path=str(sample)), pool)
    assert (outcome.status, outcome.counts.inserted) == (RunStatus.SUCCESS, 240)
    coins = await pool.fetch(
        "SELECT coin_id, count(*) AS n FROM unified_crypto_data GROUP BY 1 ORDER BY 1"
    )
    assert [(r["coin_id"], r["n"]) for r in coins] == [
        ("ardor", 60),
        ("bitcoin", 60),
        ("ethereum", 60),
        ("ripple", 60),
    ]
