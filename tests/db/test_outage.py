"""A database that goes away under a running app: 503 JSON with Retry-After, then recovery.

Uses its own embedded PostgreSQL (never the session's shared server), stopped and restarted
in the middle of the test.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.api_data import app_on_own_server, eventually, load_rows


@pytest.mark.slow
async def test_outage_answers_503_json_and_the_app_recovers_without_restart(
    tmp_path: Path,
) -> None:
    """Stop PostgreSQL: data, stats and exports answer 503 + Retry-After, health 503
    unhealthy, metrics database_up 0; start it again: the same app answers 200."""
    async with app_on_own_server(tmp_path) as own:
        server, client = own.server, own.client
        conn = await asyncpg.connect(own.url)
        await load_rows(conn)
        await conn.close()
        # the change reaches the app's version watcher by NOTIFY, a moment later
        loaded = await eventually(
            lambda: client.get("/api/v1/data"), lambda r: r.json()["total"] == 100
        )
        assert loaded.json()["total"] == 100

        await asyncio.to_thread(server.stop)

        async def data() -> httpx.Response:
            return await client.get("/api/v1/data", headers={"X-Request-ID": "down-1"})

        down = await eventually(data, lambda r: r.status_code == 503)
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert down.json() == {
            "error": "service_unavailable",
            "detail": "the database is unavailable; retry shortly",
            "request_id": "down-1",
        }
        for path in (
            "/api/v1/data?coin_id=coin-2",
            "/api/v1/stats",
            "/api/v1/data?format=csv",
        ):
            response = await client.get(path)
            assert response.status_code == 503, path
            assert response.json()["error"] == "service_unavailable"
        health = await client.get("/api/v1/health")
        assert health.status_code == 503
        assert health.headers["retry-after"] == "5"
        assert health.json()["status"] == "unhealthy"
        assert health.json()["database_connected"] is False
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "cryptoetl_database_up 0.0" in metrics.text

        await asyncio.to_thread(server.start)

        back = await eventually(data, lambda r: r.status_code == 200, within=20)
        assert back.status_code == 200
        assert back.json()["total"] == 100
        assert (await client.get("/api/v1/health")).json()["status"] == "healthy"


@pytest.mark.slow
async def test_a_smart_shutdown_makes_health_unhealthy(tmp_path: Path) -> None:
    """SIGTERM to PostgreSQL (a "smart" shutdown) keeps the pool's sessions alive but refuses
    new ones: health must say the database is going away, not 200 until it is gone."""
    async with app_on_own_server(tmp_path) as own:
        client = own.client
        assert (await client.get("/api/v1/health")).status_code == 200
        pid = own.server.pid
        assert pid is not None
        os.kill(pid, signal.SIGTERM)

        async def health() -> httpx.Response:
            return await client.get("/api/v1/health")

        down = await eventually(health, lambda r: r.status_code == 503, within=10)
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert down.json()["database_connected"] is False
        # the pooled sessions still answer: it is the refusal of new ones that health saw
        assert (await client.get("/api/v1/stats")).status_code == 200
