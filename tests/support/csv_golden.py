"""What the CSV path makes of a file, as digests: the golden record both CSV paths must match.

    .venv/bin/python -m tests.support.csv_golden   # rewrites tests/fixtures/csv_golden.json

Per fixture file: the accepted and rejected counts, and a SHA-256 over every accepted row
(line, coin, name, symbol, each number as `float.hex`, the observation time) and over every
rejection (locator, line, reason, raw text), in line order. The JSON committed beside the
fixtures was recorded from the row-by-row path the columnar one replaced (`row_by_row`, the
reader of the commit before it); `columnar` is the path that replaced it.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptoetl.etl.prepare import prepare_batch
from cryptoetl.models import Accepted, Batch, RawLocator, SourceRecord, UnifiedRecord
from cryptoetl.sources import load_settings
from cryptoetl.sources.base import SourceContext
from cryptoetl.sources.csv_blocks import BLOCK_BYTES
from cryptoetl.sources.csv_files import decode, read_header
from cryptoetl.sources.csv_source import CsvSource
from cryptoetl.transform.csv_columns import FileRows
from cryptoetl.transform.csv_rows import map_header, read_row, row_payload
from tests.support import FIXTURES

GOLDEN = FIXTURES / "csv_golden.json"

# (line, coin_id, name, symbol, price, market_cap, volume, observed_at)
AcceptedRow = tuple[int, str, str | None, str | None, float, float | None, float | None, datetime]
# (line, locator, reason, raw)
RejectedRow = tuple[int, str, str, str]


def _hex(value: float | None) -> str | None:
    return None if value is None else float(value).hex()


def digest(accepted: Iterable[AcceptedRow], rejected: Iterable[RejectedRow]) -> dict[str, object]:
    """Counts and digests of one file's outcome (any order in; sorted by line)."""
    good = sorted(accepted, key=lambda row: row[0])
    bad = sorted(rejected, key=lambda row: (row[0], row[1]))
    good_hash = hashlib.sha256()
    for line, coin, name, symbol, price, cap, volume, at in good:
        record = [line, coin, name, symbol, _hex(price), _hex(cap), _hex(volume), at.isoformat()]
        good_hash.update(json.dumps(record).encode() + b"\n")
    bad_hash = hashlib.sha256()
    for row in bad:
        bad_hash.update(json.dumps(list(row)).encode() + b"\n")
    return {
        "accepted": len(good),
        "rejected": len(bad),
        "accepted_sha256": good_hash.hexdigest(),
        "rejected_sha256": bad_hash.hexdigest(),
        "first_reasons": [row[2] for row in bad[:3]],
    }


def accepted_of(batch: Batch) -> list[Accepted]:
    """The accepted rows of a CSV batch of columns, one `Accepted` per row, in line order."""
    block = batch.columns
    if not isinstance(block, FileRows):
        return []
    rows = block.rows
    found: list[Accepted] = []
    for i in sorted(range(len(rows)), key=lambda i: int(rows.lines[i])):
        line = int(rows.lines[i])
        cap, volume = float(rows.market_cap[i]), float(rows.volume[i])
        record = UnifiedRecord(
            source="csv",
            coin_id=rows.coin_id[i],
            name=rows.name[i],
            symbol=rows.symbol[i],
            price_usd=float(rows.price[i]),
            market_cap=None if math.isnan(cap) else cap,
            volume_24h=None if math.isnan(volume) else volume,
            observed_at=rows.observed_at(i),
        )
        locator = RawLocator(key=block.fingerprint, line=line)
        found.append(Accepted(record, locator, SourceRecord({}, position=line)))
    return found


async def columnar(path: Path, block_bytes: int = BLOCK_BYTES) -> dict[str, object]:
    """The columnar path (issue 16): blocks of columns, as the pipeline prepares them."""
    settings = load_settings(env_file=None, csv_file_path=str(path))
    source = CsvSource(SourceContext(settings), block_bytes=block_bytes)
    accepted: list[AcceptedRow] = []
    rejected: list[RejectedRow] = []
    async for batch in source.fetch({}):
        prepared = prepare_batch(source, batch)
        for found in accepted_of(batch):
            r = found.record
            accepted.append(
                (
                    found.locator.line or 0,
                    r.coin_id,
                    r.name,
                    r.symbol,
                    r.price_usd,
                    r.market_cap,
                    r.volume_24h,
                    r.observed_at,
                )
            )
        for x in prepared.rejections:
            rejected.append((x.line or 0, x.locator, x.reason, x.raw))
    return digest(accepted, rejected)


def fixture_files() -> Sequence[Path]:
    return sorted((FIXTURES / "csv").glob("*.csv"))


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    values: list[str]
    raw: str
    error: str | None = None


def _old_records(path: Path, offset: int, line: int) -> Iterator[_Row]:
    """The row-by-row reader the columnar one replaced (its `ChunkReader`), unchunked."""
    pending: list[bytes] = []
    with path.open("rb") as handle:
        handle.seek(offset)

        def physical() -> Iterator[str]:
            for raw in handle:
                pending.append(raw)
                yield decode(raw)

        reader = csv.reader(physical())
        while True:
            start, error = line, None
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                values, error = [], f"cannot be read as CSV: {exc}"
            consumed, pending[:] = list(pending), []
            line += len(consumed)
            if error is None and (not values or (len(values) == 1 and not values[0].strip())):
                continue
            text = b"".join(consumed).decode("utf-8", errors="replace").rstrip("\r\n")
            if error is None and any("\x00" in value for value in values):
                values, error = [], "has a NUL byte, which PostgreSQL cannot store"
            yield _Row(start, values, text, error)


def row_by_row(path: Path) -> dict[str, object]:
    """The row-by-row path (before issue 16): the old reader, `row_payload` and `read_row` per
    row. It recorded the golden file; tests also use it as the oracle on made-up files."""
    header, end, lines, _ = read_header(path)
    layout = map_header(header, path.name)
    mtime = datetime.fromtimestamp(path.stat().st_mtime_ns / 1e9, UTC)
    now = datetime.now(UTC)
    accepted: list[AcceptedRow] = []
    rejected: list[RejectedRow] = []
    for row in _old_records(path, end, 1 + lines):
        locator = f"{path.name}:{row.line}"
        payload = row.error if row.error is not None else row_payload(layout.keys, row.values)
        if isinstance(payload, str):
            rejected.append((row.line, locator, f"line {row.line} {payload}", row.raw))
            continue
        result = read_row(layout, payload, default_observed_at=mtime, now=now)
        if isinstance(result, list):
            rejected.append((row.line, locator, "; ".join(result), row.raw))
            continue
        r = result
        accepted.append(
            (
                row.line,
                r.coin_id,
                r.name,
                r.symbol,
                r.price_usd,
                r.market_cap,
                r.volume_24h,
                r.observed_at,
            )
        )
    return digest(accepted, rejected)


async def _record() -> None:  # pragma: no cover - the recorder
    golden = {path.name: row_by_row(path) for path in fixture_files()}
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_record())
