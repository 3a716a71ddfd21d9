"""Data for the API tests, written with plain SQL as the pipeline writes it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI

from cryptoetl.db.embedded import EmbeddedPostgres
from cryptoetl.db.pool import Connection, Pool
from cryptoetl.sources import load_settings
from tests.support.process import postmasters

T = TypeVar("T")

START = datetime(2025, 1, 1, tzinfo=UTC)


async def load_rows(
    pool: Pool | Connection,
    *,
    coins: int = 5,
    steps: int = 10,
    sources: Sequence[str] = ("coingecko", "csv"),
    start: datetime = START,
) -> int:
    """`coins` x `steps` x `sources` observations, one hour apart, in time order. Every 7th
    (coin + step) has no market cap; symbols are mixed case; prices repeat across coins."""
    await pool.execute(
        """
        INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, market_cap,
            volume_24h, source, observed_at, run_id)
        SELECT 'coin-' || c, 'Coin ' || c, CASE WHEN c % 2 = 0 THEN 'c' ELSE 'C' END || c,
               (step % 3) * 10 + 0.5,
               CASE WHEN (c + step) % 7 = 0 THEN NULL ELSE c * 1000 + step END,
               c * 10 + step * 0.25,
               s.source, $1::timestamptz + step * interval '1 hour', 0
        FROM generate_series(0, $2::int - 1) AS step
        CROSS JOIN unnest($3::text[]) AS s(source)
        CROSS JOIN generate_series(1, $4::int) AS c
        ORDER BY step, s.source, c
        """,
        start,
        steps,
        list(sources),
        coins,
    )
    return coins * steps * len(sources)


async def add_run(
    pool: Pool | Connection,
    source: str,
    status: str,
    *,
    started: datetime,
    finished: datetime | None = None,
    trigger: str = "schedule",
    fetched: int = 0,
    inserted: int = 0,
    rejected: int = 0,
    error: str | None = None,
) -> int:
    """One etl_runs row as the pipeline writes it; its id."""
    run_id: int = await pool.fetchval(
        """
        INSERT INTO etl_runs (source, trigger, status, started_at, finished_at, heartbeat_at,
            owner, fetched, inserted, rejected, batches, error)
        VALUES ($1, $2, $3, $4::timestamptz, $5::timestamptz, coalesce($5::timestamptz, $4),
                'test:1:x', $6, $7, $8, 1, $9)
        RETURNING id
        """,
        source,
        trigger,
        status,
        started,
        finished,
        fetched,
        inserted,
        rejected,
        error,
    )
    return run_id


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


async def eventually(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], within: float = 5
) -> T:
    """Call `probe` until `accept` takes its result (changes reach the API asynchronously)."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if accept(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.02)


async def run_when_ended(
    client: httpx.AsyncClient, run_id: int, within: float = 10
) -> dict[str, Any]:
    """The run as /api/v1/runs/{id} shows it once it is no longer running."""

    async def probe() -> dict[str, Any]:
        response = await client.get(f"/api/v1/runs/{run_id}")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    run = await eventually(probe, lambda body: body["status"] != "running", within=within)
    assert run["status"] != "running", f"run {run_id} still running after {within} s"
    return run


def rows_as_items(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Database rows in the API's item shape (times as datetimes for comparison)."""
    return [dict(row) for row in rows]


@dataclass
class OwnServer:
    """An app on a PostgreSQL of its own, which the test may stop and start again."""

    server: EmbeddedPostgres
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def url(self) -> str:
        url: str = self.app.state.versions.url
        return url


@asynccontextmanager
async def app_on_own_server(tmp_path: Path) -> AsyncIterator[OwnServer]:
    """The real app (lifespan included) on an embedded PostgreSQL started for this test only
    (never the session's shared server), through an in-process client; all stopped after,
    and checked to be: no postmaster may outlive the test, even after a stop and start."""
    from cryptoetl.app import create_app

    server = EmbeddedPostgres(tmp_path / "own")
    await asyncio.to_thread(server.start)
    try:
        settings = load_settings(
            env_file=None,
            cryptoetl_data_dir=tmp_path / "own",
            etl_run_on_startup=False,
            log_format="json",
        )
        app = create_app(settings)  # no DATABASE_URL: the lifespan adopts the running server
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield OwnServer(server, app, client)
    finally:
        await asyncio.to_thread(server.stop)
    # not in `finally`: a failure inside the block is the one to report
    assert postmasters(server.pgdata) == [], "the test's own PostgreSQL is still running"
