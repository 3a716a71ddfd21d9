"""Keeping the embedded PostgreSQL alive: when the server the service started dies (killed,
stopped by hand, out of memory), it is started again on the same data directory.

    task = asyncio.create_task(supervise(embedded))   # `prepare_database(supervise=True)`

Every `every` seconds the postmaster's pid is checked (no query: a busy server is not a dead
one). When it is gone the death is logged with what the server log says about it ("received
fast shutdown request", a crash, or nothing new after a kill -9), and the server is
started again, waiting `BACKOFF` seconds between failed attempts (a killed server's children
may hold its shared memory for a moment). The pool's broken connections are replaced on their
next use and the server's URL does not change (its socket lives in the data directory), so
health, the API and the ETL come back on their own.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from cryptoetl.db.embedded import EmbeddedPostgres
from cryptoetl.errors import EmbeddedPostgresError

log = structlog.get_logger(__name__)

CHECK_SECONDS = 1.0
BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


async def supervise(
    embedded: EmbeddedPostgres,
    *,
    every: float = CHECK_SECONDS,
    backoff: tuple[float, ...] = BACKOFF,
) -> None:
    """Restart `embedded` whenever it dies, until cancelled."""
    while True:
        await asyncio.sleep(every)
        if embedded.running():
            continue
        await _restart(embedded, backoff)


async def _restart(embedded: EmbeddedPostgres, backoff: tuple[float, ...]) -> None:
    down_since = time.monotonic()
    said = await asyncio.to_thread(embedded.stop_reason)
    log.error(
        "embedded_postgres_died",
        pid=embedded.pid,
        data_dir=str(embedded.pgdata),
        reason=f"the server process is gone; its log says: {said or '(nothing)'}",
        action="restarting it",
    )
    attempt = 0
    while True:
        attempt += 1
        try:
            await asyncio.to_thread(embedded.restart)
        except EmbeddedPostgresError as exc:
            delay = backoff[min(attempt - 1, len(backoff) - 1)]
            log.error(
                "embedded_postgres_restart_failed", attempt=attempt, error=str(exc), retry_in=delay
            )
            await asyncio.sleep(delay)
            continue
        log.warning(
            "embedded_postgres_restarted",
            pid=embedded.pid,
            attempts=attempt,
            down_seconds=round(time.monotonic() - down_since, 2),
        )
        return
