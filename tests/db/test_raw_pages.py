"""Raw records of the HTTP sources stored as pages (migration 0017, raw_http_pages): every
accepted record kept as it arrived, once; lineage finds it in its page; a database with raw_http
rows keeps them readable after the upgrade; retention retires page partitions whole."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from cryptoetl.config import Settings
from cryptoetl.db import partitions
from cryptoetl.db.migrate import default_directory, load_migrations, migrate
from cryptoetl.db.pool import Pool, open_pool
from cryptoetl.etl.maintain import run_maintenance
from cryptoetl.etl.owner import this_process
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunStatus, RunTrigger
from tests.support.pipeline_fakes import FakeFeed, coin, pages, registry
from tests.support.raw_pages import RAW_RECORDS

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
PAGES = 17  # the migration that brought raw_http_pages


async def _pages(pool: Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT id, source, run_id, keys, jsonb_array_length(records) AS n FROM raw_http_pages"
        " ORDER BY id"
    )
    return [dict(row) for row in rows]


async def _raw_ids(pool: Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT coin_id, raw_id FROM unified_crypto_data")
    return {row["coin_id"]: row["raw_id"] for row in rows}


async def test_each_batch_is_one_page_and_a_rerun_stores_nothing_twice(
    make_settings: Callable[..., Settings], pool: Pool
) -> None:
    """Two pages fetched: two page rows holding the records in arrival order; the same data
    again adds no page; a later fetch with three known records and two new ones adds one page
    holding only the two new ones, and the known rows keep their raw ids."""
    settings = make_settings(enabled_sources="coingecko")
    first = pages(2, 3)
    await Pipeline(settings, pool, registry=registry(coingecko=FakeFeed(first))).run(
        None, RunTrigger.CLI
    )
    stored = await _pages(pool)
    assert [(p["keys"], p["n"]) for p in stored] == [
        (["coin-0", "coin-1", "coin-2"], 3),
        (["coin-3", "coin-4", "coin-5"], 3),
    ]
    ids = await _raw_ids(pool)
    assert ids == {f"coin-{n}": stored[n // 3]["id"] for n in range(6)}
    records = await pool.fetch(f"SELECT coin_id, payload FROM ({RAW_RECORDS}) AS r")  # noqa: S608
    assert {r["coin_id"]: r["payload"] for r in records} == {
        c["id"]: c for c in first[0] + first[1]
    }

    await Pipeline(settings, pool, registry=registry(coingecko=FakeFeed(pages(2, 3)))).run(
        None, RunTrigger.CLI
    )
    assert await _pages(pool) == stored
    assert await _raw_ids(pool) == ids

    # coin-0..2 again (coin-1 with a new price: its row is updated, its raw record stays the
    # one stored first), coin-6 and coin-7 new, and coin-7 twice in the same page
    later = [coin(0), coin(1, price=99.0), coin(2), coin(6), coin(7), coin(7)]
    [outcome] = await Pipeline(settings, pool, registry=registry(coingecko=FakeFeed([later]))).run(
        None, RunTrigger.CLI
    )
    assert outcome.status is RunStatus.SUCCESS, outcome.error
    assert (outcome.counts.inserted, outcome.counts.updated) == (2, 1)
    now = await _pages(pool)
    assert now[:2] == stored
    assert [(p["keys"], p["n"], p["run_id"]) for p in now[2:]] == [
        (["coin-6", "coin-7"], 2, outcome.run_id)
    ]
    after = await _raw_ids(pool)
    assert after == ids | {"coin-6": now[2]["id"], "coin-7": now[2]["id"]}
    total = await pool.fetchval("SELECT sum(jsonb_array_length(records)) FROM raw_http_pages")
    assert total == await pool.fetchval("SELECT count(*) FROM unified_crypto_data") == 8


async def test_lineage_answers_the_record_from_its_page(
    make_settings: Callable[..., Settings], make_client: ClientFactory, pool: Pool
) -> None:
    settings = make_settings(enabled_sources="coingecko")
    served = pages(2, 4)
    await Pipeline(settings, pool, registry=registry(coingecko=FakeFeed(served))).run(
        None, RunTrigger.CLI
    )
    row = await pool.fetchrow("SELECT id, raw_id FROM unified_crypto_data WHERE coin_id = 'coin-6'")
    assert row is not None
    row_id, page_id = row["id"], row["raw_id"]
    async with make_client(settings) as client:
        body = (await client.get(f"/api/v1/data/{row_id}/lineage")).json()
        stats = (await client.get("/api/v1/stats")).json()
        metrics = (await client.get("/metrics")).text
    sizes = {t["table"]: t["bytes"] for t in stats["table_sizes"]}
    assert sizes["raw_http_pages"] > 0  # its partitions summed into it
    assert not any(name.startswith("raw_http_pages_") for name in sizes)
    assert 'cryptoetl_table_size_bytes{table="raw_http_pages"}' in metrics
    raw = body["raw"]
    assert (raw["table"], raw["id"], raw["status"], raw["position"]) == (
        "raw_http_pages",
        page_id,
        "stored",
        2,
    )
    assert raw["payload"] == served[1][2]  # the record as the source sent it
    assert raw["fetched_at"] is not None
    assert body["coin_id"] == "coin-6"


def _migrations_before_pages(directory: Path) -> Path:
    directory.mkdir()
    for migration in load_migrations():
        if migration.version < PAGES:
            shutil.copy(default_directory() / migration.filename, directory / migration.filename)
    return directory


async def test_raw_http_rows_of_an_upgraded_database_stay_readable_and_are_not_stored_again(
    empty_db_url: str,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    make_client: ClientFactory,
) -> None:
    """A database at the schema before 0017 with raw_http rows is migrated: its rows keep
    their raw ids and lineage; a new run with one of their records again stores only the new
    records, in a page whose id comes after theirs."""
    legacy = coin(1)
    observed = datetime.fromisoformat(legacy["last_updated"])
    conn = await asyncpg.connect(empty_db_url)
    try:
        assert await migrate(conn, _migrations_before_pages(tmp_path / "before"))
        await conn.execute(
            "INSERT INTO etl_runs (source, trigger, status, finished_at, owner)"
            " VALUES ('coingecko', 'cli', 'success', now(), 'test')"
        )
        for table in (partitions.RAW_HTTP, partitions.UNIFIED):
            await conn.execute("SELECT ensure_partitions($1::regclass, $2, $2)", table, observed)
        raw_id = await conn.fetchval(
            "INSERT INTO raw_http (source, run_id, fetched_at, coin_id, source_updated_at,"
            " payload) VALUES ('coingecko', 1, now(), 'coin-1', $1, $2::jsonb) RETURNING id",
            observed,
            orjson.dumps(legacy).decode(),
        )
        row_id = await conn.fetchval(
            "INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, market_cap,"
            " volume_24h, source, observed_at, run_id, raw_id) VALUES ('coin-1', 'Coin 1', 'C1',"
            " 1.0, 1000.0, 10.0, 'coingecko', $1, 1, $2) RETURNING id",
            observed,
            raw_id,
        )
        applied = [name[:4] for name in await migrate(conn)]
        assert applied[0] == "0017", applied  # the upgrade starts at 0017 (later ones follow)
    finally:
        await conn.close()

    settings = make_settings(database_url=empty_db_url, enabled_sources="coingecko")
    async with open_pool(empty_db_url, min_size=1, max_size=4) as pool:
        await Pipeline(
            settings, pool, registry=registry(coingecko=FakeFeed([[coin(1), coin(2)]]))
        ).run(None, RunTrigger.CLI)
        ids = await _raw_ids(pool)
        stored = await _pages(pool)
        assert await pool.fetchval("SELECT count(*) FROM raw_http") == 1
    assert ids["coin-1"] == raw_id  # stored before: not stored again
    assert [(p["keys"], p["id"]) for p in stored] == [(["coin-2"], ids["coin-2"])]
    assert ids["coin-2"] > raw_id

    async with make_client(settings) as client:
        old = (await client.get(f"/api/v1/data/{row_id}/lineage")).json()["raw"]
    assert (old["table"], old["id"], old["status"], old["position"]) == (
        "raw_http",
        raw_id,
        "stored",
        None,
    )
    assert old["payload"] == legacy


async def test_retention_retires_page_partitions_and_lineage_says_retired(
    make_settings: Callable[..., Settings], make_client: ClientFactory, pool: Pool
) -> None:
    """Pages fetched more than RAW_RETENTION_DAYS ago leave with their whole partition; the
    unified rows keep their values and raw ids, lineage says retired, and the same records
    fetched again are still not stored twice."""
    settings = make_settings(
        enabled_sources="coingecko", raw_retention_days=30, full_resolution_days=0
    )
    run = Pipeline(settings, pool, registry=registry(coingecko=FakeFeed(pages(2, 3))))
    await run.run(None, RunTrigger.CLI)
    stored = await _pages(pool)
    before = await pool.fetch("SELECT * FROM unified_crypto_data ORDER BY id")
    later = datetime.now(UTC) + timedelta(days=32)

    outcome = await run_maintenance(pool, settings, RunTrigger.CLI, str(this_process()), now=later)

    assert outcome.status is RunStatus.SUCCESS, outcome.errors
    assert await pool.fetchval("SELECT count(*) FROM raw_http_pages") == 0
    async with pool.acquire() as conn:
        kept = await partitions.list_partitions(conn, partitions.RAW_HTTP_PAGES)
    assert all(p.hi > later - timedelta(days=30) for p in kept)
    retired = await pool.fetch(
        "SELECT rows, min_id, max_id FROM raw_retirements WHERE table_name = 'raw_http_pages'"
        " AND rows > 0"
    )
    assert sum(r["rows"] for r in retired) == len(stored) == 2
    assert min(r["min_id"] for r in retired) == stored[0]["id"]
    assert max(r["max_id"] for r in retired) == stored[1]["id"]
    assert await pool.fetch("SELECT * FROM unified_crypto_data ORDER BY id") == before

    async with make_client(settings) as client:
        body = (await client.get(f"/api/v1/data/{before[4]['id']}/lineage")).json()["raw"]
    assert (body["table"], body["id"], body["status"]) == (
        "raw_http_pages",
        stored[1]["id"],
        "retired",
    )
    assert body["retired_at"] is not None
    assert body["payload"] is None

    await run.run(None, RunTrigger.CLI)  # the same records again: known, nothing stored
    assert await pool.fetchval("SELECT count(*) FROM raw_http_pages") == 0
    assert [
        r["raw_id"] for r in await pool.fetch("SELECT raw_id FROM unified_crypto_data ORDER BY id")
    ] == [r["raw_id"] for r in before]
