"""DATABASE_READ_URL against a real hot standby: an embedded primary of its own, a standby made
with `pg_basebackup` and streaming from it, the real app on both, data loaded through the
primary by the real pipeline.

- reads come from the standby: with its replay paused, a load on the primary is not seen (and
  no cached page is newer than what the standby holds), and appears once replay resumes;
- a second app with a 1 s lag limit falls back to the primary while replay is paused, and its
  health says degraded with the lag;
- stopping the standby: reads keep answering (from the primary) at once, health says degraded
  with the reason, /metrics reports it;
- no write ever reaches the standby: writes (the pipeline, an admin pin) succeed on the
  primary and the standby's log has no rejected write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool, connect
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunStatus, RunTrigger
from tests.support.api_data import eventually, load_rows
from tests.support.process import CRYPTOETL, clean_env
from tests.support.standby import Cluster, primary_and_standby

MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
CHECK = 0.2  # seconds between replica checks in these tests
TOKEN = "replica-test-token-0123456789"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with primary_and_standby(tmp_path) as made:
        yield made


def settings_for(
    source_settings: Callable[..., Settings], cluster: Cluster, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": cluster.primary_url,
        "database_read_url": cluster.standby_url,
        "enabled_sources": ("coingecko",),
        "etl_run_on_startup": False,
        "admin_token": TOKEN,
    }
    values.update(extra)
    return source_settings(**values)


async def total(client: httpx.AsyncClient) -> int:
    response = await client.get("/api/v1/data", params={"source": "coingecko", "page_size": 5})
    assert response.status_code == 200, response.text
    value: int = response.json()["total"]
    return value


async def health(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/api/v1/health")).json()
    return body


async def standby_sql(cluster: Cluster, sql: str) -> Any:
    conn = await connect(cluster.standby_url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def load(settings: Settings, pool: Pool) -> None:
    outcomes = await Pipeline(settings, pool).run(["coingecko"], RunTrigger.CLI)
    assert [o.status for o in outcomes] == [RunStatus.SUCCESS]


async def test_reads_go_to_the_standby_and_fall_back_to_the_primary(
    cluster: Cluster, source_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    settings = settings_for(source_settings, cluster)
    strict = settings_for(source_settings, cluster, read_replica_max_lag_seconds=1)
    async with (
        make_client(settings, replica_check_seconds=CHECK) as client,
        make_client(strict, replica_check_seconds=CHECK) as strict_client,
    ):
        # a fresh standby is used once a check finds it caught up
        state = (await eventually(lambda: health(client), lambda h: h["read_replica"]["in_use"]))[
            "read_replica"
        ]
        assert state["in_use"] is True, state
        assert state["connected"] is True
        assert state["lag_seconds"] == 0
        assert state["target"].endswith("/cryptoetl")
        assert state["max_lag_seconds"] == 30
        assert await total(client) == 0

        # 1. a load through the primary (the app's own pool: every write goes there)
        await load(settings, client.app.state.pool)  # type: ignore[attr-defined]
        assert await eventually(lambda: total(client), lambda n: n == 250) == 250
        params = {"source": "coingecko", "sort": "id"}
        page = (await client.get("/api/v1/data", params=params)).json()
        in_primary = await cluster.primary.fetch(
            "SELECT id, price_usd FROM unified_crypto_data ORDER BY id LIMIT 100"
        )
        assert [(r["id"], r["price_usd"]) for r in page["data"]] == [tuple(r) for r in in_primary]

        # 2. the standby stops replaying: a load on the primary is not read back until it
        # resumes, though the primary announced a new data version at once
        assert await standby_sql(cluster, "SELECT pg_is_in_recovery()") is True
        await standby_sql(cluster, "SELECT pg_wal_replay_pause()")
        await cluster.primary.execute(
            "UPDATE unified_crypto_data SET price_usd = price_usd + 1, ingested_at = now() "
            "WHERE source = 'coingecko'"
        )
        await cluster.primary.execute(
            "INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id) "
            "VALUES ('late-coin', 1.5, 'coingecko', now(), 0)"
        )
        await asyncio.sleep(1.5)  # the strict app's 1 s limit passes; the primary notified
        assert (await health(client))["read_replica"]["in_use"] is True
        assert await total(client) == 250  # what the standby holds, not a cached newer page
        old = (await client.get("/api/v1/data", params={"coin_id": "late-coin"})).json()
        assert old["total"] == 0

        strict_health = await eventually(
            lambda: health(strict_client), lambda h: not h["read_replica"]["in_use"]
        )
        assert strict_health["status"] == "degraded"
        assert "lags" in strict_health["reason"]
        assert "READ_REPLICA_MAX_LAG_SECONDS=1" in strict_health["reason"]
        assert strict_health["read_replica"]["lag_seconds"] > 1
        assert await total(strict_client) == 251  # fell back to the primary

        await standby_sql(cluster, "SELECT pg_wal_replay_resume()")
        assert await eventually(lambda: total(client), lambda n: n == 251) == 251
        back = await eventually(
            lambda: health(strict_client), lambda h: h["read_replica"]["in_use"]
        )
        assert back["read_replica"]["lag_seconds"] <= 1
        metrics = (await client.get("/metrics")).text
        assert "cryptoetl_read_replica_in_use 1.0" in metrics
        assert "cryptoetl_read_replica_lag_seconds " in metrics

        # 3. writes still go to the primary while reads go to the standby
        pin = await client.post(
            "/admin/asset-pins",
            json={
                "source": "coingecko",
                "coin_id": "late-coin",
                "asset_id": "late",
                "symbol": "LATE",
                "name": "Late Coin",
            },
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert pin.status_code == 200, pin.text
        assert (
            await cluster.primary.fetchval(
                "SELECT asset_id FROM asset_mappings WHERE coin_id = 'late-coin'"
            )
            == "late"
        )

        # 4. the standby stops: reads answer from the primary at once, health says why
        await asyncio.to_thread(cluster.standby.stop)
        assert await total(client) == 251
        listed = await client.get("/api/v1/runs")
        assert listed.status_code == 200
        assert (await client.get("/")).status_code == 200
        down = await eventually(
            lambda: health(client), lambda h: not h["read_replica"]["connected"]
        )
        assert down["status"] == "degraded"
        assert down["database_connected"] is True
        assert "the read replica at" in down["reason"]
        assert "does not answer" in down["reason"]
        assert down["read_replica"]["in_use"] is False
        metrics = (await client.get("/metrics")).text
        assert "cryptoetl_read_replica_up 0.0" in metrics
        assert "cryptoetl_read_replica_in_use 0.0" in metrics
        assert await total(client) == 251

    # no write was ever tried on the standby
    assert "read-only transaction" not in cluster.standby.server_log()
    assert "cannot execute" not in cluster.standby.server_log()


async def test_a_primary_given_as_read_url_is_not_used_for_reads(
    cluster: Cluster, source_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    """A DATABASE_READ_URL that is not a standby (say, the primary again, or a promoted one
    that no longer follows it) is reported and not read from."""
    settings = settings_for(source_settings, cluster, database_read_url=cluster.primary_url)
    async with make_client(settings, replica_check_seconds=CHECK) as client:
        body = await health(client)
    assert body["status"] == "degraded"
    assert body["read_replica"]["in_use"] is False
    assert "is not a standby" in body["reason"]


async def export(cluster: Cluster, out: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        CRYPTOETL,
        "export",
        "--out",
        str(out),
        *args,
        env=clean_env(
            DATABASE_URL=cluster.primary_url,
            DATABASE_READ_URL=cluster.standby_url,
            LOG_LEVEL="WARNING",
        ),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def exported_rows(out: Path) -> int:
    with duckdb.connect() as conn:
        source = f"read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
        row = conn.execute(f"SELECT count(*) FROM {source}").fetchone()  # noqa: S608
        assert row is not None
        return int(row[0])


async def test_export_reads_from_the_standby_and_falls_back_to_the_primary(
    cluster: Cluster, tmp_path: Path
) -> None:
    """`cryptoetl export` with DATABASE_READ_URL exports what the standby holds (replay paused:
    not the primary's newest row); with the standby stopped, what the primary holds."""
    loaded = await load_rows(cluster.primary, coins=3, steps=30)
    standby_rows = "SELECT count(*) FROM unified_crypto_data"
    await eventually(lambda: standby_sql(cluster, standby_rows), lambda n: n == loaded)
    await standby_sql(cluster, "SELECT pg_wal_replay_pause()")
    await cluster.primary.execute(
        "INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id) "
        "VALUES ('late-coin', 1.5, 'csv', '2025-01-01 12:00+00', 0)"
    )
    code, _, stderr = await export(cluster, tmp_path / "a")
    assert code == 0, stderr
    assert exported_rows(tmp_path / "a") == loaded  # the standby's rows, not the primary's

    await asyncio.to_thread(cluster.standby.stop)
    code, _, stderr = await export(cluster, tmp_path / "b")
    assert code == 0, stderr
    assert "reading from the primary: cannot connect to PostgreSQL at socket" in stderr
    assert exported_rows(tmp_path / "b") == loaded + 1


async def test_a_standby_down_at_start_up_leaves_reads_on_the_primary(
    make_settings: Callable[..., Settings], make_client: MakeClient, pool: Pool, tmp_path: Path
) -> None:
    """The service starts with its standby unreachable: it serves from the primary, says why,
    and exports the replica as down."""
    await load_rows(pool, coins=2, steps=3, sources=("csv",))
    missing = f"postgresql://postgres@/cryptoetl?host={tmp_path / 'no-standby'}&port=5432"
    settings = make_settings(database_read_url=missing)
    async with make_client(settings, replica_check_seconds=CHECK) as client:
        response = await client.get("/api/v1/data", params={"source": "csv"})
        assert response.status_code == 200
        assert response.json()["total"] == 6
        body = await health(client)
        metrics = (await client.get("/metrics")).text
    assert body["status"] == "degraded"
    assert body["database_connected"] is True
    assert body["read_replica"]["connected"] is False
    assert body["read_replica"]["in_use"] is False
    assert body["read_replica"]["target"] == f"socket {tmp_path / 'no-standby'}/cryptoetl"
    assert "the read replica at socket" in body["reason"]
    assert "does not answer" in body["reason"]
    assert "cryptoetl_read_replica_up 0.0" in metrics
    assert "cryptoetl_read_replica_lag_seconds NaN" in metrics
