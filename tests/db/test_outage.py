"""A database that goes away under a running app: 503 JSON with Retry-After, then recovery.

Uses its own embedded PostgreSQL (never the session's shared server), stopped and restarted
in the middle of the test.
"""

from __future__ import annotations

import asyncio
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
        assert (await client.get("/api/v1/data")).json()["total"] == 100

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
