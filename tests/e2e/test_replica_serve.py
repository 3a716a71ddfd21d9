"""`cryptoetl serve` with DATABASE_URL and DATABASE_READ_URL from the environment, a real
process on a real primary and hot standby: rows loaded through the primary are served, a
stopped standby leaves reads answering and health degraded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api_data import eventually, load_rows
from tests.support.process import ServeProcess
from tests.support.standby import Cluster, primary_and_standby


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with primary_and_standby(tmp_path) as made:
        yield made


async def test_serve_reads_from_the_standby_and_survives_its_stop(
    cluster: Cluster, serve: Callable[..., ServeProcess]
) -> None:
    loaded = await load_rows(cluster.primary, coins=4, steps=12, sources=("csv",))
    service = await asyncio.to_thread(
        serve,
        {
            "DATABASE_URL": cluster.primary_url,
            "DATABASE_READ_URL": cluster.standby_url,
            "ETL_RUN_ON_STARTUP": "false",
            "ENABLED_SOURCES": "csv",
            "LOG_LEVEL": "WARNING",
        },
    )
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:

        async def health() -> dict[str, Any]:
            body: dict[str, Any] = (await client.get("/api/v1/health")).json()
            return body

        async def total() -> int:
            response = await client.get("/api/v1/data", params={"source": "csv"})
            assert response.status_code == 200, response.text
            value: int = response.json()["total"]
            return value

        state = await eventually(health, lambda h: h["read_replica"]["in_use"])
        assert state["read_replica"]["connected"] is True
        assert await eventually(total, lambda n: n == loaded) == loaded

        await asyncio.to_thread(cluster.standby.stop)
        assert await total() == loaded  # at once, from the primary
        down = await eventually(health, lambda h: not h["read_replica"]["connected"])
        assert down["status"] == "degraded"
        assert "does not answer" in down["reason"]
        metrics = (await client.get("/metrics")).text
        assert "cryptoetl_read_replica_up 0.0" in metrics
        assert await total() == loaded
    assert "read-only transaction" not in cluster.standby.server_log()
