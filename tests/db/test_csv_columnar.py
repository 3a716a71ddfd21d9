"""The columnar CSV path in the database: a real export's oddities, lineage old and new."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunStatus, RunTrigger, SourceOutcome

# Excel's BOM and CRLF, quoted grouped numbers (`"245,000"` alone would be ambiguous, the
# column shows comma grouping), one row twice, and three bad rows (a two-digit year, a price
# of zero, a shifted row).
EXPORT = (
    "\ufeffName,Symbol,Date,Close,Volume,Market Cap\r\n"
    'Bitcoin,BTC,2021-01-01,"29,374.15","1,000,300","546,000,000,000"\r\n'
    'Bitcoin,BTC,2021-01-02,"32,127.27","245,000","597,000,000,000"\r\n'
    'Bitcoin,BTC,2021-01-03,"32,782.02","2,100.2500","609,000,000,000"\r\n'
    'Bitcoin,BTC,2021-01-03,"32,782.02","2,100.2500","609,000,000,000"\r\n'
    'Ether,ETH,2021-01-01,737.71,"245,000","84,000,000,000"\r\n'
    'Ether,ETH,01-02-21,730.37,"1,000","83,000,000,000"\r\n'
    'Ether,ETH,2021-01-03,0,"2,000","83,000,000,000"\r\n'
    'Ether,ETH,2021-01-04,"1,041.50",5,9,"85,000,000,000"\r\n'
    "Ether,ETH,2021-01-05,1100,,\r\n"
)


async def run_csv(settings: Settings, pool: Pool) -> SourceOutcome:
    (outcome,) = await Pipeline(settings, pool).run(["csv"], RunTrigger.CLI)
    return outcome


async def test_a_real_export_loads_every_good_row_and_rejects_the_three_bad_ones(
    make_settings: Callable[..., Settings], pool: Pool, tmp_path: Path
) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(EXPORT.encode())
    outcome = await run_csv(make_settings(csv_file_path=str(path)), pool)
    assert outcome.status is RunStatus.PARTIAL
    assert (outcome.counts.fetched, outcome.counts.rejected) == (9, 3)
    assert (outcome.counts.inserted, outcome.counts.unchanged) == (5, 1)  # the duplicate
    rows = {
        (r["coin_id"], r["observed_at"].day): (r["price_usd"], r["volume_24h"], r["market_cap"])
        for r in await pool.fetch("SELECT * FROM unified_crypto_data")
    }
    assert rows == {
        ("bitcoin", 1): (29374.15, 1000300.0, 546e9),
        ("bitcoin", 2): (32127.27, 245000.0, 597e9),
        ("bitcoin", 3): (32782.02, 2100.25, 609e9),
        ("ether", 1): (737.71, 245000.0, 84e9),
        ("ether", 5): (1100.0, None, None),
    }
    rejected = {
        r["line_no"]: r["reason"]
        for r in await pool.fetch("SELECT line_no, reason FROM rejected_records")
    }
    assert sorted(rejected) == [7, 8, 9]
    assert "two-digit year" in rejected[7]
    assert rejected[8] == "price '0' is not positive"
    assert rejected[9] == "line 9 has 7 fields, the header has 6"
    cursor = await pool.fetchval("SELECT cursor FROM checkpoints WHERE source = 'csv'")
    formats = cursor["files"][str(path.resolve())]["number_formats"]
    assert formats == {"Close": "grouping", "Volume": "grouping", "Market Cap": "grouping"}
    chunk = await pool.fetchrow("SELECT accepted, rejected, number_formats FROM csv_chunks")
    assert chunk is not None
    assert (chunk["accepted"], chunk["rejected"]) == (6, 3)
    lineage = await pool.fetch(
        "SELECT l.line_no, l.file_path FROM csv_row_lineage l "
        "JOIN unified_crypto_data u ON u.id = l.unified_id ORDER BY l.line_no"
    )
    assert [r["line_no"] for r in lineage] == [2, 3, 5, 6, 10]  # the later duplicate won
    assert {r["file_path"] for r in lineage} == {str(path.resolve())}


async def test_rows_loaded_through_raw_csv_keep_their_lineage(
    make_settings: Callable[..., Settings], pool: Pool, tmp_path: Path
) -> None:
    """A row stored before the migration (raw_csv payload, raw_id its id) is still traced,
    beside a new one (file id and line)."""
    run_id = await pool.fetchval(
        "INSERT INTO etl_runs (source, trigger, status, owner, finished_at) "
        "VALUES ('csv', 'cli', 'success', 'x', now()) RETURNING id"
    )
    raw_id = await pool.fetchval(
        "INSERT INTO raw_csv (run_id, fetched_at, file_fingerprint, line_no, file_path, payload) "
        "VALUES ($1, now(), 'old-print', 7, '/old/file.csv', '{\"Close\": \"5\"}') RETURNING id",
        run_id,
    )
    await pool.execute(
        "INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id, raw_id)"
        " VALUES ('bitcoin', 5, 'csv', $1, $2, $3)",
        datetime(2019, 1, 1, tzinfo=UTC),
        run_id,
        raw_id,
    )
    path = tmp_path / "new.csv"
    path.write_text("Name,Date,Close\nBitcoin,2020-01-01,6\n")
    await run_csv(make_settings(csv_file_path=str(path)), pool)
    lineage = {
        r["file_path"]: (r["line_no"], r["payload"])
        for r in await pool.fetch("SELECT file_path, line_no, payload FROM csv_row_lineage")
    }
    assert lineage == {"/old/file.csv": (7, {"Close": "5"}), str(path.resolve()): (2, None)}
