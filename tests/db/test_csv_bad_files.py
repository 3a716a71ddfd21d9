"""Files and rows that cannot be read as CSV: one rejection each, the rest loads, never stuck."""

from __future__ import annotations

import gzip
import os
import random
from collections.abc import Callable
from pathlib import Path

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunStatus, RunTrigger, SourceOutcome

GOOD = "Name,Date,Close\nBitcoin,2020-01-01,1\nBitcoin,2020-01-02,2\nBitcoin,2020-01-03,3\n"


async def run_csv(settings: Settings, pool: Pool) -> SourceOutcome:
    (outcome,) = await Pipeline(settings, pool).run(["csv"], RunTrigger.CLI)
    return outcome


async def rejected(pool: Pool) -> dict[str, tuple[int, str, str]]:
    """Rejections by locator: (line, reason, raw)."""
    rows = await pool.fetch("SELECT locator, line_no, reason, raw FROM rejected_records")
    return {r["locator"]: (r["line_no"], r["reason"], r["raw"]) for r in rows}


def bad_directory(root: Path) -> Path:
    """A gzip named a.csv, an unclosed quote in a header, binary garbage, a NUL byte in one row,
    a field over the CSV field size limit, and a good z.csv."""
    root.mkdir()
    (root / "a.csv").write_bytes(gzip.compress(GOOD.encode()))
    (root / "b_unclosed.csv").write_text('Name,"Close,Date\nBitcoin,1,2020-01-01\n')
    (root / "c_garbage.csv").write_bytes(random.Random(7).randbytes(200_000))  # noqa: S311
    (root / "d_nul.csv").write_text(
        "Name,Date,Close\nEther,2020-01-01,1\nEth\x00er,2020-01-02,2\nEther,2020-01-03,3\n"
    )
    huge = "x" * 200_000
    (root / "e_huge.csv").write_text(
        f'Name,Date,Close\nDoge,2020-01-01,1\nDoge,2020-01-02,"{huge}"\nDoge,2020-01-03,3\n'
    )
    (root / "z.csv").write_text(GOOD)
    return root


async def test_unreadable_files_and_rows_are_rejected_and_the_rest_loads(
    make_settings: Callable[..., Settings], pool: Pool, tmp_path: Path
) -> None:
    """One run: every good row of every file loads; each bad file is one rejection naming it
    and why; each bad row is one rejection with its line; the next run is not stuck."""
    settings = make_settings(csv_file_path=str(bad_directory(tmp_path / "csv")))
    outcome = await run_csv(settings, pool)
    assert outcome.status is RunStatus.PARTIAL
    per_coin = {
        r["coin_id"]: r["n"]
        for r in await pool.fetch(
            "SELECT coin_id, count(*) AS n FROM unified_crypto_data GROUP BY 1"
        )
    }
    assert per_coin == {"bitcoin": 3, "ether": 2, "doge": 2}
    found = await rejected(pool)
    assert set(found) == {"a.csv", "b_unclosed.csv", "c_garbage.csv", "d_nul.csv:3", "e_huge.csv:3"}
    assert "gzip" in found["a.csv"][1]
    assert "unclosed quote" in found["b_unclosed.csv"][1]
    assert "binary data" in found["c_garbage.csv"][1]
    line, reason, raw = found["d_nul.csv:3"]
    assert (line, reason) == (3, "line 3 has a NUL byte, which PostgreSQL cannot store")
    assert raw == "Eth\\x00er,2020-01-02,2"
    line, reason, raw = found["e_huge.csv:3"]
    assert line == 3
    assert reason == "line 3 cannot be read as CSV: field larger than field limit (131072)"
    # stored capped, with the original length kept
    assert raw.startswith('Doge,2020-01-02,"xxx')
    assert raw.endswith(" [... truncated: 200018 characters in all]")
    assert len(raw) == 4096
    assert outcome.counts.rejected == 5

    again = await run_csv(settings, pool)
    assert again.status is RunStatus.SUCCESS
    assert again.counts.fetched == 0  # every file, good or bad, is skipped until it changes
    assert await pool.fetchval("SELECT count(*) FROM rejected_records") == 5

    # a bad file that is fixed is read again
    bad = tmp_path / "csv" / "a.csv"
    bad.write_text(GOOD.replace("Bitcoin", "Solana"))
    os.utime(bad, ns=(1, 1))
    fixed = await run_csv(settings, pool)
    assert (fixed.status, fixed.counts.inserted) == (RunStatus.SUCCESS, 3)


async def test_a_header_is_read_within_a_bounded_number_of_bytes(
    make_settings: Callable[..., Settings], pool: Pool, tmp_path: Path
) -> None:
    """A 1 MB file whose header never ends (an opening quote, then text without NUL bytes) is
    refused after its first 64 KiB, with that reason; a good file beside it loads."""
    root = tmp_path / "csv"
    root.mkdir()
    text = bytes(random.Random(3).choice(b"abc,\n") for _ in range(1 << 20))  # noqa: S311
    (root / "a_endless.csv").write_bytes(b'"' + text.replace(b'"', b""))
    (root / "z.csv").write_text(GOOD)
    outcome = await run_csv(make_settings(csv_file_path=str(root)), pool)
    assert (outcome.counts.inserted, outcome.counts.rejected) == (3, 1)
    found = await rejected(pool)
    assert "no header line within the first 64 KiB" in found["a_endless.csv"][1]
