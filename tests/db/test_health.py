"""GET /api/v1/health on the real app, in process and as a real `cryptoetl serve`."""

from __future__ import annotations

import httpx

from cryptoetl.db.pool import Pool


async def test_health_reports_a_connected_database(client: httpx.AsyncClient) -> None:
    """200 `healthy` with `database_connected: true`, no run yet, and a request id."""
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["database_connected"] is True
    assert body["etl_last_run"] is None
    assert body["timestamp"].endswith("Z") or "+00:00" in body["timestamp"]
    assert len(response.headers["x-request-id"]) == 36


async def test_health_shows_the_latest_run(client: httpx.AsyncClient, pool: Pool) -> None:
    """`etl_last_run` is the most recently started run, with its fetched count."""
    await pool.execute(
        "INSERT INTO etl_runs (source, trigger, status, started_at, finished_at, owner, fetched)"
        " VALUES ('coingecko', 'cli', 'success', now() - interval '1 hour', now(), 'x', 250),"
        "        ('csv', 'cli', 'failed', now() - interval '1 minute', now(), 'x', 3)"
    )
    body = (await client.get("/api/v1/health")).json()
    assert body["etl_last_run"]["source"] == "csv"
    assert body["etl_last_run"]["status"] == "failed"
    assert body["etl_last_run"]["records_processed"] == 3


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    """A client's X-Request-ID comes back unchanged."""
    response = await client.get("/api/v1/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_unknown_path_is_json_404_with_request_id(client: httpx.AsyncClient) -> None:
    """Errors are JSON and carry the request id."""
    response = await client.get("/nope", headers={"X-Request-ID": "req-404"})
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Not Found", "request_id": "req-404"}
