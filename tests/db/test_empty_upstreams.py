"""Upstreams answering `[]` where data must exist, on the real app with its ETL: both HTTP
sources end `failed` with a reason that says so, and health turns `degraded`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx

from cryptoetl.config import Settings
from cryptoetl.etl.service import open_etl
from tests.support.api_data import eventually
from tests.support.upstream import Upstream, empty_list

TOKEN = "adm1n-t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


async def test_empty_lists_fail_both_http_sources_and_degrade_health(
    make_client: ClientFactory,
    source_settings: Callable[..., Settings],
    db_url: str,
    upstream: Upstream,
) -> None:
    upstream.program("coingecko", empty_list())
    upstream.program("coinpaprika", empty_list())
    settings = source_settings(
        database_url=db_url,
        admin_token=TOKEN,
        etl_run_on_startup=False,
        enabled_sources="coingecko,coinpaprika",
    )
    async with make_client(settings, etl=open_etl) as client:
        assert (await client.get("/api/v1/health")).json()["status"] == "healthy"
        response = await client.post("/admin/etl/run", headers=AUTH)
        assert response.status_code == 202, response.text
        run_ids = response.json()["run_ids"]

        async def runs() -> dict[str, dict[str, object]]:
            found = {}
            for source, run_id in run_ids.items():
                found[source] = (await client.get(f"/api/v1/runs/{run_id}")).json()
            return found

        ended = await eventually(
            runs, lambda got: all(r["status"] != "running" for r in got.values()), within=15
        )
        gecko, paprika = ended["coingecko"], ended["coinpaprika"]
        assert (gecko["status"], paprika["status"]) == ("failed", "failed")
        assert "page 1 of /coins/markets answered an empty list" in str(gecko["error"])
        assert "/tickers answered an empty list" in str(paprika["error"])
        assert gecko["fetched"] == paprika["fetched"] == 0

        health = await client.get("/api/v1/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded"
        assert "coingecko" in body["reason"]
        assert "coinpaprika" in body["reason"]
