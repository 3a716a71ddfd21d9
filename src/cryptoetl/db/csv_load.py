"""Loading a block of CSV rows that arrives as columns (`FileRows`), in the caller's transaction.

The file is registered once per fingerprint in `csv_files`; the block is recorded in
`csv_chunks`; the rows are COPYed into a staging table and upserted into the unified table by
the one statement of `load.upsert_statement` (insert, rewrite if changed, else count
unchanged). A
row's raw id is `file_id * 2^32 + line`: no raw copy of an accepted row is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import orjson

from cryptoetl.db.load import UpsertCounts, run_upsert, upsert_statement
from cryptoetl.db.pool import Connection
from cryptoetl.transform.csv_columns import FileRows, StageRecord

COPY_SLICE = 4096  # rows encoded for COPY between two turns of the event loop

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_csv (
    coin_id text, name text, symbol text, price_usd double precision,
    market_cap double precision, volume_24h double precision, observed_us bigint, line bigint
) ON COMMIT DELETE ROWS
"""
_COLUMNS = (
    "coin_id",
    "name",
    "symbol",
    "price_usd",
    "market_cap",
    "volume_24h",
    "observed_us",
    "line",
)
_UPSERT = upsert_statement(
    """SELECT coin_id, name, symbol, price_usd, market_cap, volume_24h, $1,
           'epoch'::timestamptz + observed_us * interval '1 microsecond', $2,
           ($3::bigint << 32) | line
    FROM stage_csv"""
)


async def register_file(conn: Connection, block: FileRows, run_id: int) -> int:
    """The `csv_files` id of the block's file version (registered on first sight)."""
    file_id = await conn.fetchval(
        """
        INSERT INTO csv_files (fingerprint, path, size, mtime_ns, first_run_id)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (fingerprint) DO UPDATE SET path = EXCLUDED.path
        RETURNING id
        """,
        block.fingerprint,
        block.path,
        block.size,
        block.mtime_ns,
        run_id,
    )
    return int(file_id)


async def _slices(records: Sequence[StageRecord]) -> AsyncIterator[StageRecord]:
    """`records` for COPY, letting the event loop run between slices of them."""
    for start in range(0, len(records), COPY_SLICE):
        for record in records[start : start + COPY_SLICE]:
            yield record
        await asyncio.sleep(0)


async def load_file_rows(
    conn: Connection, source: str, run_id: int, block: FileRows
) -> UpsertCounts:
    """Register the file and the block, then upsert the block's accepted rows."""
    file_id = await register_file(conn, block, run_id)
    await conn.execute(
        """
        INSERT INTO csv_chunks (file_id, first_line, last_line, start_offset, end_offset,
                                run_id, accepted, rejected, number_formats)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
        ON CONFLICT (file_id, first_line) DO UPDATE SET
            last_line = EXCLUDED.last_line, end_offset = EXCLUDED.end_offset,
            run_id = EXCLUDED.run_id, accepted = EXCLUDED.accepted,
            rejected = EXCLUDED.rejected, number_formats = EXCLUDED.number_formats,
            committed_at = now()
        """,
        file_id,
        block.first_line,
        block.last_line,
        block.start_offset,
        block.end_offset,
        run_id,
        len(block.rows),
        len(block.rejections),
        orjson.dumps(block.number_formats).decode(),
    )
    if not block.staged:
        return UpsertCounts(0, 0, len(block.rows))
    await conn.execute(_STAGING)
    await conn.copy_records_to_table(
        "stage_csv", records=_slices(block.staged), columns=_COLUMNS, schema_name="pg_temp"
    )
    return await run_upsert(conn, _UPSERT, len(block.rows), source, run_id, file_id)
