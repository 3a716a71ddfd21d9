"""One day's file (Parquet, or CSV on request): its Arrow schema, written batch by batch to a
hidden temporary file in the day's directory, then renamed over the old file in one step, so a
reader sees the old file or the new one and never half of either.

A Parquet file's key-value metadata records the slice it holds (rows, newest `ingested_at`); a
CSV file has a hidden stamp file beside it with the same figures, written after the CSV is in
place. An export that finds the same figures for a day leaves its file alone (`is_current`). A
Parquet file whose footer cannot be read (an OS crash right after the rename), or a CSV file
whose stamp is missing or older, counts as missing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from cryptoetl.db.history_export import DaySlice

Format = Literal["parquet", "csv"]
FORMATS: tuple[Format, ...] = ("parquet", "csv")
FILE_NAME = "part-0.parquet"
CSV_FILE_NAME = "part-0.csv"
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
HOURLY_SCHEMA = pa.schema(
    [
        pa.field("coin_id", pa.string(), nullable=False),
        pa.field("hour", _UTC_MICROS, nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("market_cap", pa.float64()),
        pa.field("volume_24h", pa.float64()),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("open_at", _UTC_MICROS, nullable=False),
        pa.field("close_at", _UTC_MICROS, nullable=False),
    ]
)
SCHEMAS = {"observations": SCHEMA, "hourly": HOURLY_SCHEMA}
_ROWS_KEY = b"cryptoetl.rows"
_INGESTED_KEY = b"cryptoetl.last_ingested_us"


def day_dir(out: Path, part: DaySlice) -> Path:
    """`out/source=S/date=YYYY-MM-DD`: Hive partition directories."""
    return out / f"source={part.source}" / f"date={part.day.isoformat()}"


def _stamp(part: DaySlice) -> dict[bytes, bytes]:
    return {_ROWS_KEY: str(part.rows).encode(), _INGESTED_KEY: str(part.last_ingested_us).encode()}


def file_name(fmt: Format) -> str:
    return FILE_NAME if fmt == "parquet" else CSV_FILE_NAME


def _stamp_path(directory: Path) -> Path:
    return directory / f".{CSV_FILE_NAME}.stamp"


def _stamp_text(part: DaySlice) -> str:
    return f"{part.rows} {part.last_ingested_us}\n"


def is_current(out: Path, part: DaySlice, fmt: Format = "parquet") -> bool:
    """True when the day's file holds exactly this slice (same rows, same newest write)."""
    directory = day_dir(out, part)
    if fmt == "csv":
        try:
            stamped = _stamp_path(directory).read_text()
        except OSError:
            return False
        return stamped == _stamp_text(part) and (directory / CSV_FILE_NAME).is_file()
    try:
        metadata = pq.read_schema(directory / FILE_NAME).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False
    return (
        metadata.get(_ROWS_KEY) == _stamp(part)[_ROWS_KEY]
        and metadata.get(_INGESTED_KEY) == _stamp(part)[_INGESTED_KEY]
    )


def to_batch(records: Sequence[Any], schema: pa.Schema = SCHEMA) -> pa.RecordBatch:
    """Database rows (`history_export.COLUMNS` order, or `HOURLY_COLUMNS` for
    `HOURLY_SCHEMA`) as one Arrow batch of `schema`."""
    columns = [
        pa.array([record[i] for record in records], type=field.type)
        for i, field in enumerate(schema)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class DayWriter:
    """Writes one day's file: `write(batch)` any number of times, then `commit()` renames it
    into place; leaving without `commit()` removes the temporary file."""

    def __init__(
        self, out: Path, part: DaySlice, fmt: Format = "parquet", schema: pa.Schema = SCHEMA
    ) -> None:
        self.part = part
        self.fmt = fmt
        self.directory = day_dir(out, part)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / file_name(fmt)
        # hidden (leading dot, no .parquet/.csv suffix): no reader's glob picks it up
        self.temporary = self.directory / f".{self.path.name}.{os.getpid()}.tmp"
        self._writer: pq.ParquetWriter | pcsv.CSVWriter
        if fmt == "csv":
            self._writer = pcsv.CSVWriter(self.temporary, schema)
        else:
            stamped = schema.with_metadata(_stamp(part))
            self._writer = pq.ParquetWriter(self.temporary, stamped, compression=COMPRESSION)
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
        if self._pending and isinstance(self._writer, pcsv.CSVWriter):
            for batch in self._pending:
                self._writer.write_batch(batch)
        elif self._pending:
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
        if self.fmt == "csv":  # after the file: a stale or missing stamp means "rewrite"
            stamp = _stamp_path(self.directory)
            temporary = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
            temporary.write_text(_stamp_text(self.part))
            os.replace(temporary, stamp)

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        self.temporary.unlink(missing_ok=True)
