"""POST /admin/backfill on the real app with its ETL, the real database and the loopback history
endpoints: 202 and a run that completes with its progress, 409 while one runs (a live run is no
obstacle), 401/403, 422 with the reason."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.etl.service import open_etl
from tests.support.api_data import run_when_ended
from tests.support.upstream import Upstream

TOKEN = "backf1ll-t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Service = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def service(
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    source_settings: Callable[..., Settings],
    db_url: str,
) -> Service:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        values: dict[str, Any] = {
            "database_url": db_url,
            "admin_token": TOKEN,
            "etl_run_on_startup": False,
            "enabled_sources": "coingecko,coinpaprika",
            "http_read_timeout": 10,
        }
        async with make_client(source_settings(**(values | overrides)), etl=open_etl) as client:
            yield client

    return start


async def ended(client: httpx.AsyncClient, run_id: int) -> dict[str, Any]:
    return await run_when_ended(client, run_id, within=20)


async def test_a_backfill_answers_202_and_its_run_shows_the_progress(
    service: Service, pool: Pool, upstream: Upstream
) -> None:
    async with service() as client:
        response = await client.post(
            "/admin/backfill",
            headers=AUTH,
            json={"source": "coingecko", "coins": ["bitcoin", "nope-coin"], "days": 5},
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert (body["trigger"], body["source"], body["requests"]) == ("backfill", "coingecko", 2)
        assert response.headers["location"] == body["poll"] == f"/api/v1/runs/{body['run_id']}"
        run = await ended(client, body["run_id"])
        page = await client.get("/")
    assert page.status_code == 200
    row = page.text.split(f'<tr data-run="{body["run_id"]}">')[1].split("</tr>")[0]
    assert '<progress max="2" value="1">' in row
    assert "1 / 2 requests" in row
    assert "nope-coin: unknown to coingecko" in row
    assert "partial" in row
    assert (run["trigger"], run["status"], run["inserted"]) == ("backfill", "partial", 120)
    progress = run["backfill"]
    assert progress["coins"] == ["bitcoin", "nope-coin"]
    assert (progress["requests_total"], progress["requests_done"], progress["coins_done"]) == (
        2,
        1,
        1,
    )
    assert [e["coin"] for e in progress["coin_errors"]] == ["nope-coin"]
    assert "coin not found" in progress["coin_errors"][0]["error"]
    stored = await pool.fetchval(
        "SELECT count(*) FROM unified_crypto_data WHERE coin_id = 'bitcoin' AND run_id = $1",
        body["run_id"],
    )
    assert stored == 120


async def test_a_second_backfill_of_a_source_is_409_but_a_live_run_is_not_in_the_way(
    service: Service, upstream: Upstream
) -> None:
    upstream.delay["coingecko"] = 0.5
    async with service() as client:
        first = await client.post(
            "/admin/backfill",
            headers=AUTH,
            json={"source": "coingecko", "coins": ["bitcoin", "ethereum"], "days": 3},
        )
        assert first.status_code == 202, first.text
        second = await client.post(
            "/admin/backfill",
            headers=AUTH,
            json={"source": "coingecko", "coins": ["tether"], "days": 3},
        )
        assert second.status_code == 409, second.text
        assert [r["run_id"] for r in second.json()["running"]] == [first.json()["run_id"]]
        assert second.json()["request_id"]
        live = await client.post("/admin/etl/run?source=coingecko", headers=AUTH)
        assert live.status_code == 202, live.text
        other = await client.post(
            "/admin/backfill",
            headers=AUTH,
            json={"source": "coinpaprika", "coins": ["btc-bitcoin"], "days": 3},
        )
        assert other.status_code == 202, other.text
        live_run = await ended(client, live.json()["run_ids"]["coingecko"])
        backfill_run = await ended(client, first.json()["run_id"])
    assert live_run["status"] == backfill_run["status"] == "success"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"source": "coingecko", "days": 3}, "name the coins"),
        ({"source": "coingecko", "coins": ["bitcoin"]}, "give the range"),
        ({"source": "coingecko", "coins": ["bitcoin"], "days": 3, "since": "2025-01-01"}, "either"),
        ({"source": "coingecko", "top": 5, "days": 3}, "no coingecko snapshot"),
        ({"source": "csv", "coins": ["x"], "days": 3}, "source"),
        ({"source": "coingecko", "coins": ["bitcoin"], "days": 0}, "days"),
    ],
)
async def test_a_request_that_cannot_run_is_422_with_the_reason(
    service: Service, body: dict[str, Any], reason: str
) -> None:
    async with service() as client:
        response = await client.post("/admin/backfill", headers=AUTH, json=body)
    assert response.status_code == 422, response.text
    assert reason in response.text
    assert response.json()["request_id"]


async def test_the_token_guards_it(service: Service) -> None:
    body = {"source": "coingecko", "coins": ["bitcoin"], "days": 1}
    async with service() as client:
        missing = await client.post("/admin/backfill", json=body)
        wrong = await client.post("/admin/backfill", json=body, headers={"Authorization": "x"})
    assert missing.status_code == wrong.status_code == 401
    async with service(admin_token=None) as client:
        disabled = await client.post("/admin/backfill", json=body, headers=AUTH)
    assert disabled.status_code == 403


async def test_a_scheduled_request_never_waits_behind_the_backfill_queue(
    service: Service, upstream: Upstream
) -> None:
    """One bucket for CoinGecko in the service (10 requests a second here): a backfill takes
    every free token, yet a live run's request goes out at once, and both together keep the
    one budget's spacing."""
    upstream.history_limit_days["coingecko"] = None
    coins = [record["id"] for record in upstream.page_1[:30]]
    async with service(coingecko_requests_per_minute=600) as client:
        started = await client.post(
            "/admin/backfill",
            headers=AUTH,
            json={"source": "coingecko", "coins": coins, "days": 10},  # 30 requests, >= 3 s
        )
        assert started.status_code == 202, started.text
        await asyncio.sleep(0.8)
        asked = time.monotonic()
        live = await client.post("/admin/etl/run?source=coingecko", headers=AUTH)
        assert live.status_code == 202, live.text
        await run_when_ended(client, live.json()["run_ids"]["coingecko"])
        backfill = await run_when_ended(client, started.json()["run_id"], within=30)
    (page,) = [
        r
        for r in upstream.requests_to("coingecko")
        if r.path.endswith("/coins/markets") and "ids" not in r.query
    ]
    charts = [r for r in upstream.requests_to("coingecko") if "market_chart" in r.path]
    # about one spacing plus the run's own start-up; behind the backfill's remaining requests
    # it would be two seconds or more
    assert page.at - asked < 1.0
    assert any(r.at > page.at for r in charts)  # the backfill was still going
    assert backfill["status"] == "success"
    times = sorted(r.at for r in upstream.requests_to("coingecko"))
    assert all(b - a >= 0.1 - 0.02 for a, b in itertools.pairwise(times))  # one budget
