"""Loading a block of CSV rows that arrives as columns (`FileRows`), in the caller's transaction.

The file is registered once per fingerprint in `csv_files`; the block is recorded in
`csv_chunks`; the rows are COPYed (binary, as `transform.csv_stage` built them, and their
coins as a small table of their own) into staging tables and upserted into the unified table by
the one statement of `load.upsert_statement` (insert, rewrite if changed, else count
unchanged). A row's raw id is `file_id * 2^32 + line`: no raw copy of an accepted row is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson

from cryptoetl.db.load import UpsertCounts, run_upsert, upsert_statement
from cryptoetl.db.pool import Connection
from cryptoetl.transform.csv_columns import FileRows
from cryptoetl.transform.csv_stage import COLUMNS, StagedRows, stage_rows

_COIN_COLUMNS = ("code", "coin_id", "name", "symbol")

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_csv (
    code integer, price_usd double precision, market_cap double precision,
    volume_24h double precision, observed_us bigint, line bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_csv_coins (
    code integer PRIMARY KEY, coin_id text, name text, symbol text
) ON COMMIT DELETE ROWS
"""
# a missing market cap or volume is staged as NaN (an accepted number never is one)
_UPSERT = upsert_statement(
    """SELECT c.coin_id, c.name, c.symbol, s.price_usd, NULLIF(s.market_cap, 'NaN'),
           NULLIF(s.volume_24h, 'NaN'), $1,
           'epoch'::timestamptz + s.observed_us * interval '1 microsecond', $2,
           ($3::bigint << 32) | s.line
    FROM stage_csv s JOIN stage_csv_coins c ON c.code = s.code"""
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


async def _chunks(staged: StagedRows) -> AsyncIterator[bytes]:
    """The staged rows' binary COPY data, letting the event loop run between chunks."""
    for chunk in staged.chunks():
        yield chunk
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
    staged = block.staged if block.staged is not None else await _stage(block)
    if not len(staged):
        return UpsertCounts(0, 0, len(block.rows))
    await conn.execute(_STAGING)
    await conn.copy_records_to_table(
        "stage_csv_coins", records=staged.coins, columns=_COIN_COLUMNS, schema_name="pg_temp"
    )
    await conn.copy_to_table(
        "stage_csv",
        source=_chunks(staged),
        columns=COLUMNS,
        schema_name="pg_temp",
        format="binary",
    )
    return await run_upsert(conn, _UPSERT, len(block.rows), source, run_id, file_id)


async def _stage(block: FileRows) -> StagedRows:
    """The block's staging, made here when its source did not make it (in a worker thread)."""
    return await asyncio.to_thread(stage_rows, block.rows)
