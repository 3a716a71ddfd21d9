"""`cryptoetl serve` on its own embedded PostgreSQL, as a real subprocess."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx

from tests.support.process import ServeProcess, postmasters


async def test_serve_on_embedded_database_persists_and_stops_clean(
    serve: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    """`cryptoetl serve` with no DATABASE_URL: healthy; SIGINT and SIGTERM leave no postgres;
    a second start finds the first one's data."""
    data_dir = tmp_path / "state"
    first = serve({"CRYPTOETL_DATA_DIR": str(data_dir)}, cwd=tmp_path)
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{first.base_url}/api/v1/health")
    assert response.status_code == 200
    assert response.json()["database_connected"] is True
    socket_dir = data_dir.resolve() / "pgdata"
    url = f"postgresql://postgres:@/cryptoetl?host={socket_dir}"
    conn = await asyncpg.connect(url)
    await conn.execute(
        "INSERT INTO etl_runs (source, trigger, status, finished_at, owner)"
        " VALUES ('csv', 'cli', 'success', now(), 'test')"
    )
    await conn.close()
    assert first.stop(signal.SIGINT) == 0
    assert postmasters(data_dir.resolve()) == []

    second = serve({"CRYPTOETL_DATA_DIR": str(data_dir)}, cwd=tmp_path)
    async with httpx.AsyncClient(timeout=5) as http:
        body = (await http.get(f"{second.base_url}/api/v1/health")).json()
    assert body["etl_last_run"]["source"] == "csv"
    assert second.stop(signal.SIGTERM) == 0
    assert postmasters(data_dir.resolve()) == []
