"""The columnar CSV path against the row-by-row path it replaced: same counts, same reasons,
the same values to the bit, on every fixture file and on made-up files with every oddity the
two readers could disagree on, at block sizes from a few bytes to the default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.csv_golden import GOLDEN, columnar, fixture_files, row_by_row

BLOCKS = (4 << 20, 4096, 61)


@pytest.mark.parametrize("path", fixture_files(), ids=lambda path: path.name)
async def test_every_fixture_file_matches_the_golden_record(path: Path) -> None:
    """Recorded from the row-by-row path before it was replaced (tests/fixtures/csv_golden.json)."""
    golden = json.loads(GOLDEN.read_text())[path.name]
    for block_bytes in BLOCKS[:2]:
        assert await columnar(path, block_bytes) == golden, block_bytes


def test_the_golden_record_covers_the_twelve_files() -> None:
    golden = json.loads(GOLDEN.read_text())
    assert sorted(golden) == [path.name for path in fixture_files()]
    assert len(golden) == 12
    assert sum(int(v["accepted"]) for v in golden.values()) == 49362
    assert sum(int(v["rejected"]) for v in golden.values()) == 2991


ODD_FILES = {
    "quotes": (
        b'Name,Date,Close,Volume\n"Bit, coin",2020-01-01,"5.5",1\n"say ""hi""",2020-01-02,6,2\n'
        b'a"b,2020-01-03,7,3\n"a"b,2020-01-04,8,4\n"x" ,2020-01-05,9,5\n'
    ),
    "shapes": (
        b"Name,Date,Close\nBitcoin,2020-01-01,1,,\nBitcoin,2020-01-02,2,x\nBitcoin,2020-01-03\n"
        b"\n   \n,,\nBitcoin,2020-01-04,4\n"
    ),
    "line_ends": (
        b"\xef\xbb\xbfName,Date,Close\r\nBitcoin,2020-01-01,1\r\n\r\nBitcoin,2020-01-02,2\r"
        b"Bitcoin,2020-01-03,3\nBitcoin,2020-01-04,4"
    ),
    "encodings": (
        b"Name,Date,Close\nCaf\xe9,2020-01-01,1\nCaf\xc3\xa9,2020-01-02,2\n"
        b"Bit\x00coin,2020-01-03,3\nEther,2020-01-04,4\n"
    ),
    "multiline": (
        b'Name,Date,Close\n"Bit\ncoin",2020-01-01,1\nEther,2020-01-02,2\n"Dog\r\ne",2020-01-03,3\n'
    ),
    "unclosed_at_end": (
        b'Name,Date,Close\nBitcoin,2020-01-01,1\n"Ether,2020-01-02,2\nX,2020-01-03,3\n'
    ),
    "values": (
        b"id,Date,Close,Market Cap,Volume\nbtc,1600000000,0,-1,-2\neth,1600000000.5,-3,1e5,"
        b"n/a\n,2020-01-01T10:00:00Z,$12.5, 7 ,NaN\nxrp,29-04-13,1.2.3,inf,\n"
        b"ada,2020-13-01,00012.500,1E-3,1e400\ndot,31/12/2020 10:00,+5,.5,5.\n"
        b"sol,Feb 20 2018,1234567890123456789012,0.1,-0\nbnb,2099-01-01,1,1,1\n"
    ),
    "symbols": (
        b"Symbol,Date,Close\nBTCUSD,2020-01-01,1\nBTC-USDT,2020-01-01,1\nETH/USD,2020-01-01,2\n"
        b",2020-01-01,3\nBTCUSD,2020-01-01,4\n"
    ),
    "one_column": b"Close\n1\n\n  \n2\n,\n",
    "stray_quote": b"Name,Date,Close\n"
    + b"".join(b'Tv 5" %d,2020-01-%02d,%d\n' % (d, d % 28 + 1, d) for d in range(1, 200))
    + b'"Ok, fine",2020-02-01,7\nLast,2020-02-02,8\n',
    "huge_field": b"Name,Date,Close\nDoge,2020-01-01,1\nDoge,2020-01-02," + b"9" * 140_000 + b"\n"
    b"Doge,2020-01-03,3\n",
}


@pytest.mark.parametrize("name", sorted(ODD_FILES))
async def test_odd_files_read_the_same_as_row_by_row(name: str, tmp_path: Path) -> None:
    """Quoting, shapes, line ends, encodings, NUL bytes, multi-line and unclosed quotes, and
    values of every kind: the columnar path gives exactly what the row path gave."""
    path = tmp_path / ("bitcoin.csv" if name == "one_column" else f"{name}.csv")
    path.write_bytes(ODD_FILES[name])
    expected = row_by_row(path)
    for block_bytes in BLOCKS:
        assert await columnar(path, block_bytes) == expected, block_bytes
