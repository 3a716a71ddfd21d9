"""Columns between numpy and Arrow by their buffers: the same values as pyarrow's conversion,
sliced arrays included, and no pandas imported on the way (it costs ~35 MB of memory)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cryptoetl.transform.arrow_arrays import from_numpy, repeated, string_scalar, to_numpy


def test_values_survive_the_round_trip_sliced_or_not() -> None:
    rng = np.random.default_rng(3)
    for values in (
        rng.random(37) > 0.5,
        rng.integers(-(2**40), 2**40, 37),
        rng.integers(-5, 5, 37).astype(np.int32),
        rng.standard_normal(37),
    ):
        arrow = from_numpy(values)
        assert arrow.to_pylist() == values.tolist()
        for start in (0, 3, 9):
            np.testing.assert_array_equal(to_numpy(arrow.slice(start, 20)), values[start:][:20])
        assert len(to_numpy(arrow.slice(0, 0))) == 0


def test_arrays_with_nulls_are_converted_by_pyarrow() -> None:
    assert to_numpy(pa.array([1.5, None])).tolist()[0] == 1.5


def test_strings() -> None:
    assert repeated("", 3).to_pylist() == ["", "", ""]
    assert repeated("ab", 2).to_pylist() == ["ab", "ab"]
    joined = pc.binary_join_element_wise(repeated("a", 2), repeated("b", 2), string_scalar("\x00"))
    assert joined.to_pylist() == ["a\x00b", "a\x00b"]


def test_reading_a_csv_file_does_not_import_pandas(tmp_path: object) -> None:
    script = """
import hashlib, sys
from datetime import UTC, datetime
from pathlib import Path
from cryptoetl.sources.csv_blocks import BlockReader
from cryptoetl.transform.csv_columns import NumberFormats, read_block
from cryptoetl.transform.csv_rows import map_header
from cryptoetl.transform.csv_stage import stage_rows
path = Path(sys.argv[1])
GROUPED = '"1,000,300"'
path.write_text("Name,Symbol,Date,Close,Volume\\n" + "".join(
    f"Coin{i % 7},C{i % 7},2021-01-{1 + i % 28:02d},{i}.5,{GROUPED if i % 2 else 7}\\n"
    for i in range(1, 500)))
layout = map_header(["Name", "Symbol", "Date", "Close", "Volume"], path.name)
reader = BlockReader(path, layout.keys, 31, 2, hashlib.sha256(), 4096)
now = datetime.now(UTC)
while reader.offset < path.stat().st_size:
    block = reader.next_block()
    result = read_block(layout, block.block, default_observed_at=now, now=now,
                        formats=NumberFormats())
    assert len(stage_rows(result.rows)) > 0
print("pandas" in sys.modules)
"""
    path = f"{tmp_path}/coins.csv"
    out = subprocess.run(
        [sys.executable, "-c", script, path], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
