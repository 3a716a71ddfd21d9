"""One day's Parquet file: its Arrow schema, written batch by batch to a hidden temporary file
in the day's directory, then renamed over the old file in one step, so a reader sees the old
file or the new one and never half of either.

The file's key-value metadata records the slice it holds (rows, newest `ingested_at`); an
export that finds the same figures for a day leaves its file alone (`is_current`). A file whose
footer cannot be read (an OS crash right after the rename) counts as missing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cryptoetl.db.history_export import DaySlice

FILE_NAME = "part-0.parquet"
COMPRESSION = "zstd"
# Rows per Parquet row group: batches from the cursor (smaller, to keep the Python objects of
# one fetch few) are gathered as Arrow data until a row group is full.
ROW_GROUP_ROWS = 100_000
_UTC_MICROS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("coin_id", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("symbol", pa.string()),
        pa.field("price_usd", pa.float64(), nullable=False),
        pa.field("market_cap", pa.float64()),
        pa.field("volume_24h", pa.float64()),
        pa.field("observed_at", _UTC_MICROS, nullable=False),
        pa.field("ingested_at", _UTC_MICROS, nullable=False),
        pa.field("run_id", pa.int64(), nullable=False),
    ]
)
_ROWS_KEY = b"cryptoetl.rows"
_INGESTED_KEY = b"cryptoetl.last_ingested_us"


def day_dir(out: Path, part: DaySlice) -> Path:
    """`out/source=S/date=YYYY-MM-DD`: Hive partition directories."""
    return out / f"source={part.source}" / f"date={part.day.isoformat()}"


def _stamp(part: DaySlice) -> dict[bytes, bytes]:
    return {_ROWS_KEY: str(part.rows).encode(), _INGESTED_KEY: str(part.last_ingested_us).encode()}


def is_current(out: Path, part: DaySlice) -> bool:
    """True when the day's file holds exactly this slice (same rows, same newest write)."""
    path = day_dir(out, part) / FILE_NAME
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False
    return (
        metadata.get(_ROWS_KEY) == _stamp(part)[_ROWS_KEY]
        and metadata.get(_INGESTED_KEY) == _stamp(part)[_INGESTED_KEY]
    )


def to_batch(records: Sequence[Any]) -> pa.RecordBatch:
    """Database rows (`history_export.COLUMNS` order) as one Arrow batch of `SCHEMA`."""
    columns = [
        pa.array([record[i] for record in records], type=field.type)
        for i, field in enumerate(SCHEMA)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


class DayWriter:
    """Writes one day's file: `write(batch)` any number of times, then `commit()` renames it
    into place; leaving without `commit()` removes the temporary file."""

    def __init__(self, out: Path, part: DaySlice) -> None:
        self.directory = day_dir(out, part)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / FILE_NAME
        # hidden (leading dot, no .parquet suffix): no reader's glob picks it up
        self.temporary = self.directory / f".{FILE_NAME}.{os.getpid()}.tmp"
        schema = SCHEMA.with_metadata(_stamp(part))
        self._writer = pq.ParquetWriter(self.temporary, schema, compression=COMPRESSION)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending, schema=self._writer.schema)
            self._writer.write_table(table, row_group_size=max(self._pending_rows, 1))
        self._pending, self._pending_rows = [], 0

    def commit(self) -> None:
        # No fsync: a reader (or a crashed export) never sees a partial file because the
        # rename is atomic; after an OS crash a file that lost its data has no readable footer,
        # which `is_current` treats as missing, so the next export rewrites it.
        self._flush()
        self._writer.close()
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        self.temporary.unlink(missing_ok=True)
