"""The CSV source reading files: chunks, cursors, skip / append / rewrite / resume, odd files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from cryptoetl.errors import SourceError
from cryptoetl.models import Accepted, Batch, Rejection
from cryptoetl.sources import load_settings
from cryptoetl.sources.base import SourceContext
from cryptoetl.sources.csv_source import CsvSource
from cryptoetl.transform.csv_columns import FileRows
from tests.support import FIXTURES as TEST_FIXTURES
from tests.support.csv_golden import accepted_of

FIXTURES = TEST_FIXTURES / "csv"
HEADER = "Name,Symbol,Date,Close,Volume,Marketcap\n"


def row(day: int, close: float = 100.0) -> str:
    return f"Bitcoin,BTC,2020-01-{day:02d} 23:59:59,{close},1000,5000\n"


ROW_BYTES = len(row(1))


def source(pattern: str | Path, rows: int = 3) -> CsvSource:
    """The source reading blocks of `rows` rows of `row`'s width."""
    settings = load_settings(env_file=None, csv_file_path=str(pattern))
    return CsvSource(SourceContext(settings), block_bytes=rows * ROW_BYTES)


def size(batch: Batch) -> int:
    return batch.columns.fetched if isinstance(batch.columns, FileRows) else len(batch.items)


async def collect(
    src: CsvSource, cursor: Mapping[str, Any] | None = None
) -> tuple[list[Batch], list[Accepted], list[Rejection]]:
    batches: list[Batch] = []
    accepted: list[Accepted] = []
    rejected: list[Rejection] = []
    async for batch in src.fetch(cursor or {}):
        batches.append(batch)
        accepted.extend(accepted_of(batch))
        if isinstance(batch.columns, FileRows):
            rejected.extend(batch.columns.rejections)
        for item in batch.items:
            result = src.transform(item, batch)
            (accepted if isinstance(result, Accepted) else rejected).append(result)  # type: ignore[arg-type]
    return batches, accepted, rejected


async def test_a_file_is_read_in_chunks_with_lines_and_a_cursor(tmp_path: Path) -> None:
    """7 rows in chunks of 3: 3 batches, line numbers from 2, the last cursor complete."""
    path = tmp_path / "btc.csv"
    path.write_text(HEADER + "".join(row(d) for d in range(1, 8)))
    batches, accepted, rejected = await collect(source(path))
    assert [size(b) for b in batches] == [3, 3, 1]
    assert rejected == []
    assert [a.locator.line for a in accepted] == [2, 3, 4, 5, 6, 7, 8]
    assert accepted[0].locator.key == accepted[-1].locator.key  # one fingerprint per file
    state = batches[-1].cursor["files"][str(path.resolve())]
    assert state["complete"] is True
    assert state["offset"] == path.stat().st_size
    assert batches[0].label == "btc.csv lines 2-4"


async def test_an_unchanged_file_is_skipped_without_reading(tmp_path: Path) -> None:
    """Second run with the final cursor: one empty "no new rows" batch, nothing read."""
    path = tmp_path / "btc.csv"
    path.write_text(HEADER + row(1))
    batches, _, _ = await collect(source(path))
    again, _, _ = await collect(source(path), batches[-1].cursor)
    assert [(b.label, size(b)) for b in again] == [("no new rows", 0)]
    assert again[0].cursor == batches[-1].cursor


async def test_an_appended_file_loads_only_the_new_rows(tmp_path: Path) -> None:
    """Rows appended after a complete load are the only ones read, same fingerprint."""
    path = tmp_path / "btc.csv"
    path.write_text(HEADER + row(1) + row(2))
    batches, first, _ = await collect(source(path))
    with path.open("a") as handle:
        handle.write(row(3) + row(4))
    _, second, _ = await collect(source(path), batches[-1].cursor)
    assert [a.locator.line for a in second] == [4, 5]
    assert [a.record.observed_at.day for a in second] == [3, 4]
    assert second[0].locator.key == first[0].locator.key


async def test_an_interrupted_load_resumes_after_the_last_committed_chunk(tmp_path: Path) -> None:
    """Killed after committing chunk 1 of 3: the next run starts at chunk 2's first line."""
    path = tmp_path / "btc.csv"
    path.write_text(HEADER + "".join(row(d) for d in range(1, 8)))
    batches, _, _ = await collect(source(path))
    committed = batches[0].cursor  # the kill came before chunk 2 committed
    _, resumed, _ = await collect(source(path), committed)
    assert [a.locator.line for a in resumed] == [5, 6, 7, 8]


async def test_a_rewritten_file_is_read_again_under_a_new_fingerprint(tmp_path: Path) -> None:
    """Same size, a changed value: the prefix hash differs, so the whole file is read again."""
    path = tmp_path / "btc.csv"
    path.write_text(HEADER + row(1, 100.0) + row(2, 100.0))
    batches, first, _ = await collect(source(path))
    path.write_text(HEADER + row(1, 100.0) + row(2, 200.0))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    _, second, _ = await collect(source(path), batches[-1].cursor)
    assert [a.record.price_usd for a in second] == [100.0, 200.0]
    assert second[0].locator.key != first[0].locator.key


async def test_directory_and_glob_select_csv_files(tmp_path: Path) -> None:
    """A directory means every *.csv in it; a glob means what it matches."""
    for name in (
        "csv_kaggle_coin_Aave.csv",
        "csv_coingecko_markets_pandas_export_250_2024-11-17.csv",
    ):
        shutil.copy(FIXTURES / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a csv")
    _, accepted, _ = await collect(source(tmp_path, rows=100_000))
    assert len(accepted) == 275 + 250
    _, accepted, _ = await collect(source(tmp_path / "*Aave*", rows=100_000))
    assert len(accepted) == 275


async def test_no_matching_file_fails_the_source(tmp_path: Path) -> None:
    """A path that matches nothing is an error, not an empty success."""
    with pytest.raises(SourceError, match="no CSV file matches"):
        await collect(source(tmp_path / "missing.csv"))


async def test_an_unusable_file_is_one_rejection_and_the_others_load(tmp_path: Path) -> None:
    """A file without a price column is rejected whole, listing its columns; others load."""
    (tmp_path / "a_bad.csv").write_text("Name,Date,Volume\nBitcoin,2020-01-01,5\n")
    (tmp_path / "b_good.csv").write_text(HEADER + row(1))
    _, accepted, rejected = await collect(source(tmp_path))
    assert len(accepted) == 1
    assert len(rejected) == 1
    assert rejected[0].locator == "a_bad.csv"
    assert "no price column" in rejected[0].reason
    assert "'Name', 'Date', 'Volume'" in rejected[0].reason
    assert rejected[0].raw == "Name,Date,Volume"


async def test_bad_rows_are_rejected_with_line_raw_text_and_reason(tmp_path: Path) -> None:
    """A bad value and a shifted row are rejected with their line and text; the rest loads."""
    path = tmp_path / "btc.csv"
    path.write_text(
        HEADER
        + row(1)
        + "Bitcoin,BTC,29-04-13 23:59,1.445.399.932.861.320,0,5\n"
        + "Bitcoin,BTC,2020-01-03,9,926,540,000,5\n"
        + row(4)
    )
    _, accepted, rejected = await collect(source(path))
    assert [a.locator.line for a in accepted] == [2, 5]
    assert [(r.line, r.locator) for r in rejected] == [(3, "btc.csv:3"), (4, "btc.csv:4")]
    assert "two-digit year" in rejected[0].reason
    assert "several dots" in rejected[0].reason
    assert rejected[0].raw == "Bitcoin,BTC,29-04-13 23:59,1.445.399.932.861.320,0,5"
    assert rejected[1].reason == "line 4 has 8 fields, the header has 6"
    assert rejected[0].file == str(path.resolve())


async def test_bom_crlf_quoted_newlines_and_no_final_newline(tmp_path: Path) -> None:
    """Excel's BOM and CRLF, a quoted name over two lines, and a missing last newline."""
    path = tmp_path / "odd.csv"
    path.write_bytes(
        b'\xef\xbb\xbfName,Date,Close\r\n"Bit\r\ncoin",2020-01-01,5\r\nEther,2020-01-02,6'
    )
    _, accepted, rejected = await collect(source(path))
    assert rejected == []
    assert [(a.record.name, a.locator.line) for a in accepted] == [("Bit\r\ncoin", 2), ("Ether", 4)]


async def test_every_fixture_file_loads_through_the_source(tmp_path: Path) -> None:
    """The twelve real files through the streaming reader: 49,362 accepted, 2,991 rejected."""
    _, accepted, rejected = await collect(source(FIXTURES, rows=100_000))
    assert len(accepted) == 49362
    assert len(rejected) == 2991
    assert {r.file for r in rejected} == {
        str(FIXTURES.resolve() / "csv_kaggle_coin_Bitcoin_EXCEL_MANGLED.csv")
    }
