"""Maintenance: raw partitions older than RAW_RETENTION_DAYS leave whole, the unified rows stay
with their lineage saying "retired"; the run is recorded like a run, scheduled on the leader;
table sizes reach /api/v1/stats and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cryptoetl.config import Settings
from cryptoetl.db import partitions
from cryptoetl.db.pool import Pool
from cryptoetl.errors import RunInProgressError
from cryptoetl.etl.maintain import MAINTENANCE, run_maintenance
from cryptoetl.etl.owner import this_process
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.etl.service import open_etl
from cryptoetl.models import RunStatus, RunTrigger
from tests.support.api_data import eventually

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=40)  # past a 30-day retention
RECENT = NOW - timedelta(hours=1)


async def _seed(pool: Pool) -> dict[str, list[int]]:
    """Five CoinGecko records 40 days old and five an hour old, three CSV lines of a file first
    loaded 50 days ago, and a unified row for each, linked to its raw record."""
    async with pool.acquire() as conn:
        for table, when in (
            (partitions.RAW_HTTP, OLD),
            (partitions.RAW_HTTP, RECENT),
            (partitions.RAW_CSV, NOW - timedelta(days=50)),
            (partitions.UNIFIED, OLD),
            (partitions.UNIFIED, RECENT),
        ):
            await partitions.ensure(conn, table, when, when)
        run_id = await conn.fetchval(
            "INSERT INTO etl_runs (source, trigger, status, finished_at, owner)"
            " VALUES ('coingecko', 'cli', 'success', now(), 'test') RETURNING id"
        )
        ids: dict[str, list[int]] = {}
        for label, when in (("old", OLD), ("recent", RECENT)):
            ids[label] = []
            for i in range(5):
                at = when + timedelta(minutes=i)
                raw_id = await conn.fetchval(
                    "INSERT INTO raw_http (source, run_id, fetched_at, coin_id,"
                    " source_updated_at, payload) VALUES ('coingecko', $1, $2, $3, $2, $4)"
                    " RETURNING id",
                    run_id,
                    at,
                    f"coin-{i}",
                    {"id": f"coin-{i}", "current_price": i + 1},
                )
                ids[label].append(
                    await conn.fetchval(
                        "INSERT INTO unified_crypto_data (coin_id, price_usd, source,"
                        " observed_at, run_id, raw_id) VALUES ($1, $2, 'coingecko', $3, $4, $5)"
                        " RETURNING id",
                        f"coin-{i}",
                        i + 1.5,
                        at,
                        run_id,
                        raw_id,
                    )
                )
        ids["csv"] = []
        for line in range(2, 5):
            raw_id = await conn.fetchval(
                "INSERT INTO raw_csv (run_id, fetched_at, file_fingerprint, line_no, file_path,"
                " payload) VALUES ($1, $2, 'fp', $3, '/h.csv', '{}') RETURNING id",
                run_id,
                NOW - timedelta(days=50),
                line,
            )
            ids["csv"].append(
                await conn.fetchval(
                    "INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at,"
                    " run_id, raw_id) VALUES ('hist', $1, 'csv', $2, $3, $4) RETURNING id",
                    float(line),
                    OLD + timedelta(days=line),
                    run_id,
                    raw_id,
                )
            )
    return ids


async def test_old_raw_partitions_retire_whole_and_lineage_says_retired(
    pool: Pool,
    make_settings: Callable[..., Settings],
    make_client: ClientFactory,
) -> None:
    ids = await _seed(pool)
    before = await pool.fetch(
        "SELECT id, coin_id, price_usd, observed_at, raw_id FROM unified_crypto_data ORDER BY id"
    )
    settings = make_settings(raw_retention_days=30)

    outcome = await run_maintenance(pool, settings, RunTrigger.CLI, str(this_process()), now=NOW)

    assert outcome.status is RunStatus.SUCCESS, outcome.errors
    assert [step.name for step in outcome.steps] == [
        "partitions_ahead",
        "retire_raw",
        "thin",
        "compact_rollups",
        "sizes",
    ]
    retire = outcome.steps[1]
    assert retire.counts["partitions"] == 2
    assert retire.counts["rows"] == 8
    # the raw tables lost their old partitions, and only those
    assert await pool.fetchval("SELECT count(*) FROM raw_http") == 5
    assert await pool.fetchval("SELECT count(*) FROM raw_csv") == 0
    cutoff = NOW - timedelta(days=30)
    async with pool.acquire() as conn:
        for table in (partitions.RAW_HTTP, partitions.RAW_CSV):
            assert all(p.hi > cutoff for p in await partitions.list_partitions(conn, table))
    recorded = await pool.fetch(
        "SELECT table_name, rows, retired_at FROM raw_retirements ORDER BY table_name"
    )
    assert [(r["table_name"], r["rows"]) for r in recorded] == [("raw_csv", 3), ("raw_http", 5)]
    assert all(r["retired_at"] is not None for r in recorded)
    # every unified row kept its values and its raw reference
    after = await pool.fetch(
        "SELECT id, coin_id, price_usd, observed_at, raw_id FROM unified_crypto_data ORDER BY id"
    )
    assert after == before

    async with make_client(settings) as client:
        old = (await client.get(f"/api/v1/data/{ids['old'][0]}/lineage")).json()
        assert old["raw"]["status"] == "retired"
        assert old["raw"]["table"] == "raw_http"
        assert old["raw"]["retired_at"] is not None
        assert old["raw"]["payload"] is None
        recent = (await client.get(f"/api/v1/data/{ids['recent'][2]}/lineage")).json()
        assert recent["raw"]["status"] == "stored"
        assert recent["raw"]["payload"] == {"id": "coin-2", "current_price": 3}
        csv = (await client.get(f"/api/v1/data/{ids['csv'][1]}/lineage")).json()
        assert (csv["raw"]["table"], csv["raw"]["status"]) == ("raw_csv", "retired")
        missing = await client.get("/api/v1/data/999999999/lineage")
        assert missing.status_code == 404
        assert "request_id" in missing.json()

        # recorded like a run: listed, with its report
        listed = (await client.get("/api/v1/runs")).json()["runs"]
        mine = [run for run in listed if run["id"] == outcome.run_id]
        assert mine
        assert (mine[0]["source"], mine[0]["status"]) == (MAINTENANCE, "success")
        detail = (await client.get(f"/api/v1/runs/{outcome.run_id}")).json()
        assert [step["name"] for step in detail["report"]] == [
            "partitions_ahead",
            "retire_raw",
            "thin",
            "compact_rollups",
            "sizes",
        ]
        assert detail["report"][1]["counts"]["rows"] == 8
        # and on the dashboard: a timeline row of its own
        page = (await client.get("/")).text
        assert '<text class="source" x="0"' in page
        assert ">maintenance</text>" in page

    # a second run has nothing left to retire
    again = await run_maintenance(pool, settings, RunTrigger.CLI, str(this_process()), now=NOW)
    assert again.steps[1].counts["partitions"] == 0


async def test_retention_zero_keeps_every_raw_record(
    pool: Pool, make_settings: Callable[..., Settings]
) -> None:
    await _seed(pool)
    settings = make_settings(raw_retention_days=0)
    outcome = await run_maintenance(pool, settings, RunTrigger.CLI, str(this_process()), now=NOW)
    assert outcome.status is RunStatus.SUCCESS
    assert await pool.fetchval("SELECT count(*) FROM raw_http") == 10
    assert await pool.fetchval("SELECT count(*) FROM raw_csv") == 3


async def test_one_maintenance_at_a_time(
    pool: Pool, make_settings: Callable[..., Settings]
) -> None:
    owner = str(this_process())
    await pool.execute(
        "INSERT INTO etl_runs (source, trigger, owner) VALUES ($1, 'cli', $2)", MAINTENANCE, owner
    )
    with pytest.raises(RunInProgressError):
        await run_maintenance(pool, make_settings(), RunTrigger.CLI, owner)


async def test_sizes_in_stats_and_metrics(pool: Pool, client: httpx.AsyncClient) -> None:
    await _seed(pool)
    stats = (await client.get("/api/v1/stats")).json()
    sizes = {t["table"]: t["bytes"] for t in stats["table_sizes"]}
    assert sizes["unified_crypto_data"] > 0
    assert sizes["raw_http"] > 0
    assert stats["database_bytes"] >= sum(sizes.values())
    assert "unified_crypto_data_20" not in " ".join(sizes)  # partitions summed into their table
    text = (await client.get("/metrics")).text
    assert 'cryptoetl_table_size_bytes{table="unified_crypto_data"}' in text
    assert "cryptoetl_database_size_bytes " in text


@pytest.fixture
def service(
    make_client: ClientFactory, make_settings: Callable[..., Settings]
) -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        values: dict[str, Any] = {"scheduler_lease_seconds": 3, "enabled_sources": "csv"}
        async with make_client(make_settings(**(values | overrides)), etl=open_etl) as client:
            yield client

    return start


async def test_the_leader_runs_maintenance_on_schedule(
    service: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    async with service(maintenance_interval_seconds=1) as client:

        async def runs() -> list[dict[str, Any]]:
            body = (await client.get("/api/v1/runs")).json()
            return [r for r in body["runs"] if r["source"] == MAINTENANCE]

        found = await eventually(
            runs, lambda rs: any(r["status"] == "success" for r in rs), within=20
        )
        done = [r for r in found if r["status"] == "success"]
        assert done
        assert done[0]["trigger"] == "schedule"


async def test_a_csv_rows_lineage_names_its_file_and_line(
    pool: Pool,
    make_settings: Callable[..., Settings],
    make_client: ClientFactory,
    tmp_path: Path,
) -> None:
    """A CSV row loaded by the pipeline (no jsonb copy kept) shows its file and line."""
    path = tmp_path / "prices.csv"
    path.write_text(
        "Date,Symbol,Name,Close\n2024-03-01,BTC,Bitcoin,61000\n2024-03-02,BTC,Bitcoin,62000\n"
    )
    settings = make_settings(csv_file_path=str(path), enabled_sources="csv")
    (outcome,) = await Pipeline(settings, pool).run(["csv"], RunTrigger.CLI)
    assert outcome.status is RunStatus.SUCCESS
    row_id = await pool.fetchval(
        "SELECT id FROM unified_crypto_data WHERE price_usd = 62000 AND source = 'csv'"
    )
    async with make_client(settings) as client:
        body = (await client.get(f"/api/v1/data/{row_id}/lineage")).json()
    assert body["raw"]["status"] == "stored"
    assert body["raw"]["table"] == "csv_files"
    assert body["raw"]["file_path"] == str(path.resolve())
    assert body["raw"]["line_no"] == 3
