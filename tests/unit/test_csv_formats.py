"""Number formats inferred per file and column, carried on the cursor, never re-interpreting."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryptoetl.models import Batch
from cryptoetl.sources import load_settings
from cryptoetl.sources.base import SourceContext
from cryptoetl.sources.csv_blocks import BlockReader
from cryptoetl.sources.csv_source import CsvSource
from cryptoetl.transform.csv_columns import FileRows
from cryptoetl.transform.csv_values import (
    BOTH,
    DECIMAL_COMMA,
    GROUPING,
    AmbiguousValue,
    number_format,
    parse_number_in,
)
from tests.support.csv_golden import accepted_of

HEADER = "Name,Date,Close\n"


def line(day: int, close: str) -> str:
    return f'Bitcoin,2020-01-{day:02d},"{close}"\n'


async def read(
    path: Path, cursor: dict[str, object] | None = None, block: int = 1 << 20
) -> list[Batch]:
    settings = load_settings(env_file=None, csv_file_path=str(path))
    source = CsvSource(SourceContext(settings), block_bytes=block)
    return [batch async for batch in source.fetch(cursor or {})]


def prices(batches: list[Batch]) -> dict[int, float]:
    return {a.locator.line or 0: a.record.price_usd for b in batches for a in accepted_of(b)}


def reasons(batches: list[Batch]) -> dict[int, str]:
    return {
        r.line or 0: r.reason
        for b in batches
        if isinstance(b.columns, FileRows)
        for r in b.columns.rejections
    }


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("1,000,300", GROUPING),
        ("2,100.2500", GROUPING),
        ("245,000", None),
        ("1.234,5", DECIMAL_COMMA),
        ("0,5", DECIMAL_COMMA),
        ("12,3456", DECIMAL_COMMA),
        ("1234,567", DECIMAL_COMMA),
        ("14.748.800", None),
        ("12.5", None),
    ],
)
def test_what_a_value_shows(text: str, shown: str | None) -> None:
    assert number_format(text) == shown


def test_ambiguous_values_follow_the_column_or_stay_refused() -> None:
    assert parse_number_in("245,000", GROUPING) == 245000.0
    assert parse_number_in("245,000", DECIMAL_COMMA) == 245.0
    assert parse_number_in("0,5", DECIMAL_COMMA) == 0.5
    for convention in (None, BOTH):
        with pytest.raises(AmbiguousValue, match="thousands separator or a decimal comma"):
            parse_number_in("245,000", convention)
    with pytest.raises(AmbiguousValue):
        parse_number_in("0,5", GROUPING)
    with pytest.raises(AmbiguousValue, match="several dots"):
        parse_number_in("14.748.800", DECIMAL_COMMA)


async def test_a_column_that_shows_its_convention_reads_its_ambiguous_values(
    tmp_path: Path,
) -> None:
    """The issue's column: `1,000,300` and `2,100.2500` show comma grouping, so `245,000` is
    245000; the cursor records the convention."""
    path = tmp_path / "btc.csv"
    path.write_text(
        HEADER + line(1, "245,000") + line(2, "1,000,300") + line(3, "2,100.2500") + line(4, "7")
    )
    batches = await read(path)
    assert prices(batches) == {2: 245000.0, 3: 1000300.0, 4: 2100.25, 5: 7.0}
    state = batches[-1].cursor["files"][str(path.resolve())]
    assert state["number_formats"] == {"Close": GROUPING}
    assert isinstance(batches[-1].columns, FileRows)
    assert batches[-1].columns.number_formats == {"Close": GROUPING}


async def test_both_conventions_or_none_keep_the_rejection(tmp_path: Path) -> None:
    both = tmp_path / "both.csv"
    both.write_text(HEADER + line(1, "1,000,300") + line(2, "0,5") + line(3, "245,000"))
    found = reasons(await read(both))
    assert sorted(found) == [3, 4]
    assert "thousands separator or a decimal comma" in found[4]
    none = tmp_path / "none.csv"
    none.write_text(HEADER + line(1, "245,000") + line(2, "12.5"))
    assert list(reasons(await read(none))) == [2]


async def test_a_resumed_file_reads_the_rest_the_same_way_and_never_rereads(
    tmp_path: Path,
) -> None:
    """Blocks of one row: `245,000` before any evidence is refused and stays refused; once a
    block showed grouping, the cursor carries it, and a run resumed from that cursor reads the
    later `245,000` as 245000."""
    path = tmp_path / "btc.csv"
    rows = [line(1, "245,000"), line(2, "1,000,300"), line(3, "245,000"), line(4, "9")]
    path.write_text(HEADER + "".join(rows))
    width = max(len(r) for r in rows)
    batches = await read(path, block=width)
    assert len(batches) == 4
    assert reasons(batches).keys() == {2}  # read before the column showed anything
    assert prices(batches) == {3: 1000300.0, 4: 245000.0, 5: 9.0}
    resumed = await read(path, dict(batches[1].cursor), block=width)  # killed after block 2
    assert [b.columns.first_line for b in resumed if isinstance(b.columns, FileRows)] == [4, 5]
    assert prices(resumed) == {4: 245000.0, 5: 9.0}


async def test_clean_files_are_parsed_by_pyarrow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row-by-row fallback is not used for a well-formed file (quoted cells included)."""

    def no_fallback(*_: object) -> None:
        raise AssertionError("fell back to the row-by-row reader")

    monkeypatch.setattr(BlockReader, "_python", no_fallback)
    path = tmp_path / "btc.csv"
    path.write_text(HEADER + "".join(line(d, f"{d},000,000") for d in range(1, 29)))
    assert len(prices(await read(path, block=200))) == 28
