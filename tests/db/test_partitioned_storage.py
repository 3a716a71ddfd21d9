"""Partitioned storage (migration 0011): a fresh database is partitioned; a database of the
schema before it, with data, is upgraded in place by `migrate` with every row, id and link kept;
partitions are made for whatever a load brings, and nothing lands in the unified DEFAULT
partition."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson

from cryptoetl.db import partitions
from cryptoetl.db.data import fetch_page, page_statement
from cryptoetl.db.data_query import DataFilters, build_query
from cryptoetl.db.migrate import default_directory, load_migrations, migrate
from cryptoetl.db.pool import Connection, Pool

TABLES = ("unified_crypto_data", "raw_http", "raw_csv")
FIRST_PARTITIONED = 11

# Data in the schema before 0011: HTTP observations every 9 hours over about 8 years (ending a
# few hours ahead), CSV history daily back to 2013, an operator's row in 2030, and gaps in the
# ids (deleted rows) so that the sequences are ahead of max(id).
SEED = """
INSERT INTO etl_runs (source, trigger, status, finished_at, owner)
VALUES ('coingecko', 'cli', 'success', now(), 'test'), ('csv', 'cli', 'success', now(), 'test');

INSERT INTO raw_http (source, run_id, fetched_at, coin_id, source_updated_at, payload)
SELECT CASE WHEN i % 3 = 0 THEN 'coinpaprika' ELSE 'coingecko' END, 1,
       now() + interval '4 hours' - i * interval '9 hours' + interval '1 minute',
       'coin-' || (i % 40), now() + interval '4 hours' - i * interval '9 hours',
       jsonb_build_object('i', i, 'price', i * 1.5)
FROM generate_series(1, 8000) AS i;

INSERT INTO raw_csv (run_id, fetched_at, file_fingerprint, line_no, file_path, payload)
SELECT 2, now() - (i % 60) * interval '1 day', 'fp-' || (i % 3), i + 1, '/data/h.csv',
       jsonb_build_object('line', i)
FROM generate_series(1, 4000) AS i;

INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, market_cap, volume_24h,
                                 source, observed_at, run_id, raw_id)
SELECT coin_id, 'Coin ' || coin_id, upper(coin_id), (payload->>'price')::float8,
       CASE WHEN id % 5 = 0 THEN NULL ELSE id * 10.0 END, id * 2.0,
       source, source_updated_at, run_id, id
FROM raw_http ORDER BY id;

INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, source, observed_at, run_id,
                                 raw_id)
SELECT 'hist-' || (line_no % 3), NULL, 'H' || (line_no % 3), line_no,
       'csv', timestamptz '2013-05-01' + (line_no / 3) * interval '1 day', 2, id
FROM raw_csv ORDER BY id;

INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id)
VALUES ('operator', 1, 'csv', '2030-01-01', 0);

DELETE FROM unified_crypto_data WHERE id % 97 = 0;
DELETE FROM raw_http WHERE id % 89 = 0;
"""

SNAPSHOT = {
    table: f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM {table} AS t"  # noqa: S608
    for table in TABLES
}


async def _snapshot(conn: asyncpg.Connection) -> dict[str, object]:
    shot: dict[str, object] = {}
    for table, sql in SNAPSHOT.items():
        row = await conn.fetchrow(sql)
        assert row is not None
        shot[table] = tuple(row)
    shot["source_stats"] = [
        tuple(row)
        for row in await conn.fetch("SELECT source, row_count FROM source_stats ORDER BY source")
    ]
    return shot


async def _relkinds(conn: Connection) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT relname, relkind::text FROM pg_class WHERE relname = ANY($1::text[])", list(TABLES)
    )
    return {row["relname"]: row["relkind"] for row in rows}


async def _default_rows(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM unified_crypto_data_default"))


def _migrations_before_partitioning(directory: Path) -> Path:
    for migration in load_migrations():
        if migration.version < FIRST_PARTITIONED:
            shutil.copy(default_directory() / migration.filename, directory / migration.filename)
    return directory


async def test_a_fresh_database_is_partitioned(pool: Pool) -> None:
    """The three tables are partitioned, with a partition for now and the weeks ahead."""
    async with pool.acquire() as conn:
        assert await _relkinds(conn) == dict.fromkeys(TABLES, "p")
        now = datetime.now(UTC)
        for table in TABLES:
            bounds = await partitions.list_partitions(conn, table)
            assert any(p.lo <= now < p.hi for p in bounds), table
        weeks = await partitions.list_partitions(conn, "unified_crypto_data")
        assert max(p.hi for p in weeks) >= now + timedelta(days=14)
        assert all(p.hi - p.lo == timedelta(days=7) for p in weeks)
        assert await partitions.ensure(conn, "unified_crypto_data", now, now) == 0


async def test_upgrade_in_place_keeps_every_row(empty_db_url: str, tmp_path: Path) -> None:
    """A database of the schema before 0011 with data is migrated to the partitioned layout by
    the ordinary migrate step: equal counts, identical rows (ids and raw links included),
    exact source_stats, nothing in the DEFAULT partition, and ids continue past the old ones."""
    conn = await asyncpg.connect(empty_db_url)
    try:
        applied = await migrate(conn, _migrations_before_partitioning(tmp_path))
        assert applied
        assert all(int(name[:4]) < FIRST_PARTITIONED for name in applied)
        await conn.execute(SEED)
        assert await _relkinds(conn) == dict.fromkeys(TABLES, "r")
        before = await _snapshot(conn)
        assert before["unified_crypto_data"][0] > 10_000  # type: ignore[index]
        next_ids = {
            table: await conn.fetchval(f"SELECT max(id) FROM {table}")  # noqa: S608
            for table in TABLES
        }

        applied = await migrate(conn)

        assert "0011_partitioned_storage.sql" in applied
        assert await _relkinds(conn) == dict.fromkeys(TABLES, "p")
        assert await _snapshot(conn) == before
        assert await _default_rows(conn) == 0
        assert await conn.fetch(PAIRS) == await conn.fetch(PAIRS_TRUTH)
        stats = await conn.fetchval("SELECT sum(row_count) FROM source_stats")
        assert stats == before["unified_crypto_data"][0]  # type: ignore[index]
        # history back to 2013 made yearly partitions, not hundreds of weekly ones
        unified = await partitions.list_partitions(conn, "unified_crypto_data")
        assert len(unified) < 45
        assert any(p.lo.year == 2013 and p.hi.year == 2014 for p in unified)
        # the triggers and the identity still work on the partitioned table
        new_id = await conn.fetchval(
            "INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id)"
            " VALUES ('after', 1, 'coingecko', now(), 1) RETURNING id"
        )
        assert new_id > next_ids["unified_crypto_data"]
        count = await conn.fetchval("SELECT row_count FROM source_stats WHERE source = 'coingecko'")
        assert count == dict(before["source_stats"])["coingecko"] + 1  # type: ignore[call-overload]
        assert await migrate(conn) == []
    finally:
        await conn.close()


async def test_a_row_outside_every_partition_is_kept_and_moved(pool: Pool) -> None:
    """An operator's row in a year nobody made a partition for waits in the DEFAULT partition;
    the partition made for its range later takes it over, and the totals do not move."""
    async with pool.acquire() as conn:
        when = datetime(2011, 6, 1, tzinfo=UTC)
        await conn.execute(
            "INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id)"
            " VALUES ('old', 2, 'csv', $1, 0)",
            when,
        )
        assert await conn.fetchval("SELECT count(*) FROM unified_crypto_data_default") == 1
        stats = await conn.fetchval("SELECT row_count FROM source_stats WHERE source = 'csv'")

        assert await partitions.ensure(conn, "unified_crypto_data", when, when) == 1

        assert await conn.fetchval("SELECT count(*) FROM unified_crypto_data_default") == 0
        stored = await conn.fetchrow(
            "SELECT tableoid::regclass::text AS part, price_usd FROM unified_crypto_data"
            " WHERE coin_id = 'old'"
        )
        assert stored is not None
        assert tuple(stored) == ("unified_crypto_data_20110101", 2.0)
        assert (
            await conn.fetchval("SELECT row_count FROM source_stats WHERE source = 'csv'") == stats
        )


PAIRS_TRUTH = (
    "SELECT source, coin_id, max(observed_at) AS last FROM unified_crypto_data"
    " GROUP BY 1, 2 ORDER BY 1, 2"
)
PAIRS = (
    "SELECT source, coin_id, last_observed_at AS last FROM unified_pairs"
    " WHERE last_observed_at IS NOT NULL ORDER BY 1, 2"
)


async def test_the_pairs_of_the_latest_view_follow_every_write(pool: Pool) -> None:
    """unified_pairs (what `latest` reads) holds every (source, coin) with its newest time
    after inserts, upserts, a moved key, deletes of the newest rows and a truncate, and the
    latest view answers with the newest remaining row."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id)"
            " SELECT 'c' || (i % 7), i, CASE WHEN i % 2 = 0 THEN 'csv' ELSE 'coingecko' END,"
            " now() - i * interval '1 hour', 0 FROM generate_series(1, 300) AS i"
        )
        assert await conn.fetch(PAIRS) == await conn.fetch(PAIRS_TRUTH)
        # the loader's upsert: changed values, same keys
        await conn.execute(
            "INSERT INTO unified_crypto_data AS u (coin_id, price_usd, source, observed_at,"
            " run_id) SELECT coin_id, price_usd + 1, source, observed_at, 0"
            " FROM unified_crypto_data ON CONFLICT (source, coin_id, observed_at)"
            " DO UPDATE SET price_usd = EXCLUDED.price_usd"
        )
        assert await conn.fetch(PAIRS) == await conn.fetch(PAIRS_TRUTH)
        # delete each pair's newest row, move a coin to another name
        await conn.execute(
            "DELETE FROM unified_crypto_data WHERE (source, coin_id, observed_at) IN"
            " (SELECT source, coin_id, max(observed_at) FROM unified_crypto_data GROUP BY 1, 2)"
        )
        await conn.execute("UPDATE unified_crypto_data SET coin_id = 'moved' WHERE coin_id = 'c3'")
        assert await conn.fetch(PAIRS) == await conn.fetch(PAIRS_TRUTH)

    async with pool.acquire() as conn:
        query = build_query(
            filters=DataFilters(latest=True), sort=None, page=None, page_size=100, cursor=None
        )
        sql, args = page_statement(query, with_count=True)
        page = await conn.fetchrow(sql, *args)
        assert page is not None
        truth = await conn.fetch(PAIRS_TRUTH)
        assert page["total"] == len(truth)

        await conn.execute("TRUNCATE unified_crypto_data")
        assert await conn.fetch(PAIRS) == []


async def test_the_first_page_is_planned_once_per_connection(pool: Pool) -> None:
    """Page 1 without filters is a statement without parameters: a connection plans it once and
    reuses the plan, instead of planning a custom plan (which asks every partition's and
    index's size from the files) for each of its first five requests."""
    async with pool.acquire() as conn:
        await partitions.ensure(
            conn, "unified_crypto_data", datetime(2026, 1, 1, tzinfo=UTC), datetime.now(UTC)
        )
        await conn.execute(
            "INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id)"
            " SELECT 'c' || (i % 5), i, 'coingecko', now() - i * interval '1 day', 0"
            " FROM generate_series(1, 300) AS i"
        )
        query = build_query(filters=DataFilters(), sort=None, page=None, page_size=100, cursor=None)
        sql, args = page_statement(query, with_count=False)
        assert args == []
        for _ in range(8):
            page = await fetch_page(conn, query, with_count=False)
            assert page.has_more
            assert page.last_id is not None
        plans = await conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            sql,
        )
        assert plans is not None
        assert (plans["generic_plans"], plans["custom_plans"]) == (8, 0)
        ids = [row["id"] for row in orjson.loads(page.data_json)]
        assert ids == sorted(ids)
        assert len(ids) == 100
