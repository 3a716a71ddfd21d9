"""POST /admin/etl/run on the real app with its scheduler, the real database and the loopback
upstreams: 202 with runs that really complete, 409 while one runs, 401/403, 422, shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.etl.background import STOPPING
from cryptoetl.etl.service import open_etl
from tests.support.api_data import eventually, run_when_ended
from tests.support.upstream import Upstream

TOKEN = "adm1n-t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAPRIKA_TICKERS = 81  # the recorded CoinPaprika list
GECKO_PAGE = 250  # the recorded CoinGecko page
ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def etl_settings(source_settings: Callable[..., Settings], db_url: str) -> Callable[..., Settings]:
    """Settings for the app on this test's database, sources on the loopback upstreams."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": db_url,
            "admin_token": TOKEN,
            "etl_run_on_startup": False,
            "enabled_sources": "coingecko,coinpaprika",
            "scheduler_lease_seconds": 3,
            "http_read_timeout": 10,  # the slow upstreams below answer late, not never
        }
        return source_settings(**(values | overrides))

    return make


@pytest.fixture
def service(
    make_client: ClientFactory, etl_settings: Callable[..., Settings]
) -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    """The app with its ETL (`create_app(..., etl=open_etl)`), as an in-process client."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        async with make_client(etl_settings(**overrides), etl=open_etl) as client:
            yield client

    return start


async def finished(client: httpx.AsyncClient, run_id: int, within: float = 10) -> dict[str, Any]:
    """The run as /api/v1/runs/{id} shows it once it is no longer running."""
    return await run_when_ended(client, run_id, within)


async def test_a_manual_run_answers_202_at_once_and_runs_to_completion(
    service: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]], pool: Pool
) -> None:
    """202 with a run id per enabled source; polling each shows it loaded the upstream's data."""
    async with service() as client:
        response = await client.post("/admin/etl/run", headers=AUTH | {"X-Request-ID": "t-1"})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["trigger"] == "manual"
        assert body["request_id"] == "t-1"
        assert set(body["run_ids"]) == {"coingecko", "coinpaprika"}
        assert response.headers["location"] == "/api/v1/runs"
        for item in body["runs"]:
            assert item["poll"] == f"/api/v1/runs/{item['run_id']}"
        gecko = await finished(client, body["run_ids"]["coingecko"])
        paprika = await finished(client, body["run_ids"]["coinpaprika"])
    assert (gecko["status"], gecko["fetched"], gecko["inserted"]) == ("success", GECKO_PAGE, 250)
    assert (paprika["status"], paprika["fetched"]) == ("success", PAPRIKA_TICKERS)
    assert gecko["trigger"] == paprika["trigger"] == "manual"
    assert gecko["owner"] == body["replica"]
    rows = await pool.fetchval("SELECT count(*) FROM unified_crypto_data")
    assert rows == GECKO_PAGE + PAPRIKA_TICKERS


async def test_sources_come_from_the_query_and_the_body(
    service: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]], pool: Pool
) -> None:
    """`?source=` and `{"sources": [...]}` pick the sources (any known one, enabled or not)."""
    async with service(enabled_sources="coingecko") as client:
        one = await client.post("/admin/etl/run?source=coinpaprika", headers=AUTH)
        assert one.status_code == 202
        assert set(one.json()["run_ids"]) == {"coinpaprika"}
        run_id = one.json()["run_ids"]["coinpaprika"]
        assert one.headers["location"] == f"/api/v1/runs/{run_id}"
        await finished(client, run_id)
        both = await client.post(
            "/admin/etl/run?source=coinpaprika", headers=AUTH, json={"sources": ["coingecko"]}
        )
        assert both.status_code == 202
        assert set(both.json()["run_ids"]) == {"coingecko", "coinpaprika"}
        for run_id in both.json()["run_ids"].values():
            assert (await finished(client, run_id))["status"] == "success"
    counts = await pool.fetch("SELECT source, count(*) FROM etl_runs GROUP BY source")
    assert {row["source"]: row["count"] for row in counts} == {"coinpaprika": 2, "coingecko": 1}


async def test_a_second_trigger_while_a_source_runs_is_409_and_starts_nothing(
    service: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    upstream: Upstream,
    pool: Pool,
) -> None:
    """409 names the running run (id, source, started_at, owner); no other source started."""
    upstream.delay["coingecko"] = 1.5
    async with service() as client:
        first = await client.post("/admin/etl/run?source=coingecko", headers=AUTH)
        assert first.status_code == 202
        run_id = first.json()["run_ids"]["coingecko"]
        clash = await client.post(
            "/admin/etl/run", headers=AUTH | {"X-Request-ID": "clash-1"}
        )  # coingecko and coinpaprika
        assert clash.status_code == 409
        body = clash.json()
        assert body["error"] == "conflict"
        assert body["request_id"] == "clash-1"
        assert f"run ids {run_id}" in body["detail"]
        [running] = body["running"]
        assert (running["run_id"], running["source"], running["status"]) == (
            run_id,
            "coingecko",
            "running",
        )
        assert running["owner"] == first.json()["replica"]
        assert running["started_at"] == first.json()["runs"][0]["started_at"]
        assert await pool.fetchval("SELECT count(*) FROM etl_runs") == 1  # no coinpaprika run
        assert (await finished(client, run_id))["status"] == "success"
        again = await client.post("/admin/etl/run?source=coingecko", headers=AUTH)
        assert again.status_code == 202  # free again once it ended


@pytest.mark.parametrize(
    ("token", "header", "status"),
    [(None, AUTH["Authorization"], 403), (TOKEN, "Bearer nope", 401), (TOKEN, None, 401)],
)
async def test_the_trigger_needs_the_admin_token(
    service: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    pool: Pool,
    token: str | None,
    header: str | None,
    status: int,
) -> None:
    """403 when no ADMIN_TOKEN is set, 401 for a wrong or missing one; JSON, nothing started."""
    headers = {"X-Request-ID": "auth-2"} | ({"Authorization": header} if header else {})
    async with service(admin_token=token) as client:
        response = await client.post("/admin/etl/run?source=coingecko", headers=headers)
    assert response.status_code == status
    assert response.json()["request_id"] == "auth-2"
    assert await pool.fetchval("SELECT count(*) FROM etl_runs") == 0


@pytest.mark.parametrize(
    ("query", "body", "where"),
    [
        ("?source=bitcoin", None, ["query", "source", "0"]),
        ("", {"sources": ["coingecko", "kraken"]}, ["body", "sources", "1"]),
        ("", {"sources": []}, ["body", "sources"]),
        ("", {"source": ["coingecko"]}, ["body", "source"]),
    ],
)
async def test_an_unknown_source_is_422_and_starts_nothing(
    service: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    pool: Pool,
    query: str,
    body: dict[str, Any] | None,
    where: list[str],
) -> None:
    """Unknown names, an empty list or a misspelt field: 422 naming it, no run started."""
    async with service() as client:
        response = await client.post(f"/admin/etl/run{query}", headers=AUTH, json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_parameters"
    assert where in [problem["loc"] for problem in response.json()["detail"]]
    assert await pool.fetchval("SELECT count(*) FROM etl_runs") == 0


async def test_stopping_the_service_records_its_running_runs_as_cancelled(
    service: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    upstream: Upstream,
    pool: Pool,
) -> None:
    """Shutdown mid-run: the run is `failed` with the reason, nothing `running`, lease freed."""
    upstream.delay["coingecko"] = 30
    async with service() as client:
        response = await client.post("/admin/etl/run", headers=AUTH)
        assert response.status_code == 202
        run_ids = response.json()["run_ids"]
        await finished(client, run_ids["coinpaprika"])

        async def asked() -> int:  # coingecko's request is out, waiting for its answer
            return len(upstream.requests_to("coingecko"))

        assert await eventually(asked, bool)
    gecko = await pool.fetchrow(
        "SELECT status, error FROM etl_runs WHERE id = $1", run_ids["coingecko"]
    )
    assert tuple(gecko or ()) == ("failed", STOPPING)
    assert await pool.fetchval("SELECT count(*) FROM etl_runs WHERE status = 'running'") == 0
    checkpoint = await pool.fetchrow(
        "SELECT status, last_error FROM checkpoints WHERE source = 'coingecko'"
    )
    assert tuple(checkpoint or ()) == ("failed", STOPPING)
    released = await pool.fetchval(
        "SELECT expires_at <= clock_timestamp() FROM scheduler_lease WHERE name = 'etl'"
    )
    assert released is True


async def test_a_scheduled_run_skips_a_busy_source_and_runs_the_others(
    service: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    upstream: Upstream,
    pool: Pool,
) -> None:
    """With a manual coingecko run in progress, the schedule runs coinpaprika only."""
    upstream.delay["coingecko"] = 3.0
    async with service(etl_interval_seconds=1) as client:
        manual = await client.post("/admin/etl/run?source=coingecko", headers=AUTH)
        assert manual.status_code == 202
        run_id = manual.json()["run_ids"]["coingecko"]
        assert (await finished(client, run_id))["status"] == "success"
    runs = await pool.fetch("SELECT * FROM etl_runs ORDER BY id")
    manual_run = next(run for run in runs if run["id"] == run_id)
    scheduled = [run for run in runs if run["trigger"] == "schedule"]
    # the ticks during the manual run each ran coinpaprika (had the busy coingecko stopped
    # them, none would have): at least two in its 3 s. A second coingecko run cannot overlap
    # the manual one at all (the database allows one running run per source).
    during = [
        run
        for run in scheduled
        if run["source"] == "coinpaprika" and run["started_at"] < manual_run["finished_at"]
    ]
    assert len(during) >= 2


async def test_health_and_metrics_say_which_replica_leads(
    service: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    make_client: ClientFactory,
    etl_settings: Callable[..., Settings],
) -> None:
    """/api/v1/health names the leader and says this replica is it; /metrics has the gauge."""
    async with service() as client:
        replica = client.app.state.etl.replica  # type: ignore[attr-defined]
        await client.app.state.etl.lease.settled()  # type: ignore[attr-defined]
        health = (await client.get("/api/v1/health")).json()["scheduler"]
        assert health["leader"] == health["this_replica"] == replica
        assert health["is_leader"] is True
        assert health["fencing_token"] == 1
        metrics = (await client.get("/metrics")).text
        assert "cryptoetl_scheduler_leader 1.0" in metrics
        async with make_client(etl_settings()) as plain:  # an app with no ETL of its own
            other = (await plain.get("/api/v1/health")).json()["scheduler"]
            assert (other["leader"], other["fencing_token"]) == (replica, 1)
            assert (other["this_replica"], other["is_leader"]) == (None, False)
            assert "cryptoetl_scheduler_leader 0.0" in (await plain.get("/metrics")).text
            refused = await plain.post("/admin/etl/run", headers=AUTH)
            assert refused.status_code == 503
