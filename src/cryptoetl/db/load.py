"""The bulk loader: raw rows, the unified upsert and rejected records, for one batch.

Every function takes a connection that is inside the caller's transaction (the pipeline owns
it, one per batch) and writes in bulk:

- `store_raw`: COPY into a temporary staging table, then, for sources located by coin id and
  their own time, one row of `raw_http_pages` holding the batch's records not stored before (a
  record whose unified row exists keeps that row's raw id); for file sources `INSERT ... SELECT
  ... ON CONFLICT DO NOTHING` on `raw_csv`'s locator. Returns the raw id of every record.
- `upsert_unified`: COPY into a temporary staging table, then one `INSERT ... SELECT ... ON
  CONFLICT (source, coin_id, observed_at) DO UPDATE ... WHERE (values) IS DISTINCT FROM (new
  values)`: a new observation is inserted, a changed one rewritten, an unchanged one costs an
  index lookup and no write. The counts come back from the same statement.
- `store_rejections`: one `INSERT ... SELECT FROM unnest(...) ON CONFLICT` on (source, locator,
  raw hash): a bad record seen again updates `last_run_id` and `seen_count`, it adds no row.

Staging tables are `ON COMMIT DELETE ROWS` temporary tables, created once per connection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptoetl.db.pool import Connection
from cryptoetl.models import LocatorKind, Rejection, UnifiedRecord

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_unified (
    coin_id text, name text, symbol text, price_usd double precision,
    market_cap double precision, volume_24h double precision, observed_at timestamptz,
    raw_id bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_raw (
    n integer, key text, at timestamptz, line bigint, path text, payload text
) ON COMMIT DELETE ROWS;
"""
UNIFIED_STAGE_COLUMNS = (
    "coin_id",
    "name",
    "symbol",
    "price_usd",
    "market_cap",
    "volume_24h",
    "observed_at",
    "raw_id",
)

# A row of stage_unified, in UNIFIED_STAGE_COLUMNS order.
StageRow = tuple[
    str, str | None, str | None, float, float | None, float | None, datetime, int | None
]


def upsert_statement(select: str) -> str:
    """The one unified upsert: the rows of `select` (a `SELECT` of coin_id, name, symbol,
    price_usd, market_cap, volume_24h, source, observed_at, run_id, raw_id from a staging
    table) inserted when new, rewritten when a value changed, else left alone; answers one
    row of (inserted, updated). Every loader (HTTP batches, CSV blocks) uses it."""
    return f"""
WITH written AS (
    INSERT INTO unified_crypto_data AS u
        (coin_id, name, symbol, price_usd, market_cap, volume_24h, source, observed_at,
         run_id, raw_id)
    {select}
    ON CONFLICT (source, coin_id, observed_at) DO UPDATE SET
        name = EXCLUDED.name, symbol = EXCLUDED.symbol, price_usd = EXCLUDED.price_usd,
        market_cap = EXCLUDED.market_cap, volume_24h = EXCLUDED.volume_24h,
        run_id = EXCLUDED.run_id, raw_id = EXCLUDED.raw_id, ingested_at = now()
    WHERE (u.name, u.symbol, u.price_usd, u.market_cap, u.volume_24h)
          IS DISTINCT FROM
          (EXCLUDED.name, EXCLUDED.symbol, EXCLUDED.price_usd, EXCLUDED.market_cap,
           EXCLUDED.volume_24h)
    RETURNING (old.id IS NULL) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated
FROM written
"""


_UPSERT = upsert_statement(
    """SELECT coin_id, name, symbol, price_usd, market_cap, volume_24h, $1, observed_at, $2,
           raw_id
    FROM stage_unified"""
)


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    inserted: int
    updated: int
    unchanged: int


async def run_upsert(conn: Connection, statement: str, staged: int, *args: object) -> UpsertCounts:
    """Run an `upsert_statement` over `staged` staged rows: how many were inserted, updated
    and left unchanged."""
    result = (await conn.fetch(statement, *args))[0]  # an aggregate: always one row
    inserted, updated = int(result["inserted"]), int(result["updated"])
    return UpsertCounts(inserted, updated, staged - inserted - updated)


@dataclass(frozen=True, slots=True)
class RawRow:
    """One accepted record's raw row: its locator, where it came from, and the payload (JSON)."""

    key: str
    at: datetime | None
    line: int | None
    path: str | None
    payload: str


async def ensure_staging(conn: Connection) -> None:
    """Create this connection's staging tables if they do not exist yet."""
    await conn.execute(_STAGING)


def stage_rows(
    records: Sequence[UnifiedRecord], raw_ids: Sequence[int | None]
) -> tuple[list[StageRow], int]:
    """Staging rows for `records`, one per observation (the last wins); and how many were
    duplicates of an earlier record of the same batch (counted as unchanged)."""
    rows: dict[tuple[str, datetime], StageRow] = {}
    for record, raw_id in zip(records, raw_ids, strict=True):
        rows[(record.coin_id, record.observed_at)] = (
            record.coin_id,
            record.name,
            record.symbol,
            record.price_usd,
            record.market_cap,
            record.volume_24h,
            record.observed_at,
            raw_id,
        )
    return list(rows.values()), len(records) - len(rows)


async def upsert_unified(
    conn: Connection, source: str, run_id: int, rows: Sequence[StageRow], duplicates: int = 0
) -> UpsertCounts:
    """Upsert staged rows (unique per observation, see `stage_rows`) of one source."""
    if not rows:
        return UpsertCounts(0, 0, duplicates)
    await conn.copy_records_to_table(
        "stage_unified", records=rows, columns=UNIFIED_STAGE_COLUMNS, schema_name="pg_temp"
    )
    counts = await run_upsert(conn, _UPSERT, len(rows), source, run_id)
    return UpsertCounts(counts.inserted, counts.updated, counts.unchanged + duplicates)


# An HTTP source's batch (docs/storage.md#raw-records-as-pages): a record whose locator (the
# source's coin id and its own time, which is also its unified key) already has a unified row
# keeps that row's raw id, the raw record stored when it first arrived (a page, or a raw_http
# row from before migration 0017); the others, each locator once (its first arrival), go into
# one page row in arrival order, and all of them get the page's id. $4 and $5 bound the batch's
# times, so only the unified partitions they fall in are probed.
_RAW_PAGE = """
WITH known AS (
    SELECT s.n, u.raw_id FROM stage_raw AS s
    JOIN unified_crypto_data AS u
      ON u.source = $1 AND u.coin_id = s.key AND u.observed_at = s.at
    WHERE u.raw_id IS NOT NULL AND u.observed_at BETWEEN $4 AND $5
), fresh AS (
    SELECT DISTINCT ON (s.key, s.at) s.n, s.key, s.at, s.payload FROM stage_raw AS s
    WHERE NOT EXISTS (SELECT 1 FROM known AS k WHERE k.n = s.n)
    ORDER BY s.key, s.at, s.n
), page AS (
    INSERT INTO raw_http_pages (source, run_id, fetched_at, keys, times, records)
    SELECT $1, $2, $3, array_agg(key ORDER BY n), array_agg(at ORDER BY n),
           jsonb_agg(payload::jsonb ORDER BY n)
    FROM fresh HAVING count(*) > 0
    RETURNING id
)
SELECT (SELECT id FROM page) AS page_id,
       (SELECT array_agg(n) FROM known) AS n, (SELECT array_agg(raw_id) FROM known) AS id
"""
# A file source's rows: `at` is the time the row's file was first loaded (`file_first_loaded`):
# raw_csv's partition key, so a line read again meets its stored copy in the same partition.
_RAW_CSV_INSERT = """
    INSERT INTO raw_csv (run_id, fetched_at, file_fingerprint, line_no, file_path, payload)
    SELECT $1, at, key, line, path, payload::jsonb FROM stage_raw ORDER BY n
    ON CONFLICT (file_fingerprint, line_no, fetched_at) DO NOTHING
"""
# Every staged row's raw id (new or stored before), by its position in the batch.
_RAW_CSV_IDS = """
    SELECT array_agg(s.n) AS n, array_agg(r.id) AS id FROM stage_raw s
    JOIN raw_csv r ON r.file_fingerprint = s.key AND r.line_no = s.line AND r.fetched_at = s.at
"""


async def file_first_loaded(
    conn: Connection, fingerprints: Iterable[str], fetched_at: datetime
) -> dict[str, datetime]:
    """The time each file was first loaded: its stored rows' `fetched_at` (the first line's),
    or `fetched_at` for a file not stored yet (or whose raw rows were retired)."""
    first: dict[str, datetime] = {}
    for key in fingerprints:
        stored = await conn.fetchval(
            "SELECT fetched_at FROM raw_csv WHERE file_fingerprint = $1 ORDER BY line_no LIMIT 1",
            key,
        )
        first[key] = stored if stored is not None else fetched_at
    return first


async def store_raw(
    conn: Connection,
    kind: LocatorKind,
    source: str,
    run_id: int,
    fetched_at: datetime,
    rows: Sequence[RawRow],
) -> list[int]:
    """Store the raw rows that are not stored yet (one page of `raw_http_pages` for an HTTP
    source's batch, rows of `raw_csv` for a file source's); return every row's raw id, in
    order (a paged record's id is its page's)."""
    if not rows:
        return []
    ids: list[int | None] = [None] * len(rows)
    if kind is LocatorKind.OBSERVATION:
        times = [r.at for r in rows if r.at is not None]
        if len(times) != len(rows):
            raise ValueError(f"{source}: an HTTP source's raw row without its locator time")
        paged = [(n, r.key, r.at, r.payload) for n, r in enumerate(rows)]
        await conn.copy_records_to_table(
            "stage_raw", records=paged, columns=("n", "key", "at", "payload"), schema_name="pg_temp"
        )
        found = (await conn.fetch(_RAW_PAGE, source, run_id, fetched_at, min(times), max(times)))[0]
        ids = [found["page_id"]] * len(rows)
    else:
        first = await file_first_loaded(conn, {r.key for r in rows}, fetched_at)
        records = [(n, r.key, first[r.key], r.line, r.path, r.payload) for n, r in enumerate(rows)]
        await conn.copy_records_to_table("stage_raw", records=records, schema_name="pg_temp")
        await conn.execute(_RAW_CSV_INSERT, run_id)
        found = (await conn.fetch(_RAW_CSV_IDS))[0]
    for n, raw_id in zip(found["n"] or [], found["id"] or [], strict=True):
        ids[n] = raw_id
    missing = [n for n, raw_id in enumerate(ids) if raw_id is None]
    if missing:  # cannot happen inside one transaction; never link a row to nothing silently
        raise RuntimeError(f"{source}: raw rows not found after insert: {missing[:5]}")
    return [raw_id for raw_id in ids if raw_id is not None]


# Stored rejected text is capped: a 50 MB line is kept as its first characters and its length
# (the same bound as `db.rejected.SERVED_RAW_CHARS`, so what is stored is served whole).
MAX_STORED_CHARS = 4096


def storable(text: str, limit: int = MAX_STORED_CHARS) -> str:
    """`text` as PostgreSQL can store it: NUL bytes shown as `\\x00`, and a text longer than
    `limit` characters cut to `limit` characters in all, ending with the marker the API serves
    (`db.rejected`), which keeps the original length."""
    text = text.replace("\x00", "\\x00")
    if len(text) > limit:
        marker = f" [... truncated: {len(text)} characters in all]"
        text = text[: limit - len(marker)] + marker
    return text


def raw_hash(raw: str) -> str:
    """What identifies a rejected record's content."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


async def store_rejections(
    conn: Connection, source: str, run_id: int, rejections: Sequence[Rejection]
) -> None:
    """Record rejected records; one seen before (same locator and content) is updated.

    The raw text and the reason are stored capped and without NUL bytes (`storable`); the
    content hash is of the whole original text."""
    if not rejections:
        return
    unique: dict[tuple[str, str], Rejection] = {}
    for rejection in rejections:
        unique[(rejection.locator, raw_hash(rejection.raw))] = rejection
    keys = list(unique)
    values = list(unique.values())
    await conn.execute(
        """
        INSERT INTO rejected_records AS r
            (source, first_run_id, last_run_id, locator, file, line_no, raw, reason, raw_hash)
        SELECT $1, $2, $2, locator, file, line_no, raw, reason, raw_hash
        FROM unnest($3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[])
             AS x(locator, file, line_no, raw, reason, raw_hash)
        ON CONFLICT (source, locator, raw_hash) DO UPDATE SET
            last_run_id = EXCLUDED.last_run_id, reason = EXCLUDED.reason,
            seen_count = r.seen_count + 1, last_seen_at = now()
        """,
        source,
        run_id,
        [key[0] for key in keys],
        [v.file for v in values],
        [v.line for v in values],
        [storable(v.raw) for v in values],
        [storable(v.reason) for v in values],
        [key[1] for key in keys],
    )
