"""Getting a database ready: the embedded server or `DATABASE_URL`, the application database,
migrations.

    async with prepare_database(settings) as url:   # server started, reachable, migrated
        async with open_pool(url) as pool: ...

Without `DATABASE_URL`, an embedded PostgreSQL (`cryptoetl.db.embedded`) is started on
CRYPTOETL_DATA_DIR and stopped when the block ends; the service (`supervise=True`) has it
restarted whenever it dies. Every command that opens the database goes
through here, so pending migrations are always applied first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import structlog

from cryptoetl.config import Settings
from cryptoetl.db.embedded import EmbeddedPostgres, server_parameters
from cryptoetl.db.migrate import migrate
from cryptoetl.db.pool import connect, describe_target, with_database
from cryptoetl.db.supervise import supervise as supervise_server

log = structlog.get_logger(__name__)

APP_DATABASE = "cryptoetl"


async def ensure_database(server_url: str, database: str) -> str:
    """Create `database` on the server if it does not exist; return its URL."""
    conn = await connect(server_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            # another process starting at the same time may have created it first
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    return with_database(server_url, database)


@asynccontextmanager
async def prepare_database(settings: Settings, *, supervise: bool = False) -> AsyncIterator[str]:
    """Yield the URL of a reachable, migrated database; stop the embedded server on exit.

    With `supervise` (the service), an embedded server that dies while the block runs is
    started again (`cryptoetl.db.supervise`)."""
    embedded: EmbeddedPostgres | None = None
    watcher: asyncio.Task[None] | None = None
    try:
        if settings.database_url is None:
            embedded = EmbeddedPostgres(
                settings.cryptoetl_data_dir,
                server_parameters(settings.embedded_shared_buffers_mb),
            )
            log.info("embedded_postgres_starting", data_dir=str(embedded.pgdata))
            server_url = await asyncio.to_thread(embedded.start)
            url = await ensure_database(server_url, APP_DATABASE)
            log.info("embedded_postgres_ready", target=describe_target(url), pid=embedded.pid)
        else:
            url = settings.database_url.get_secret_value()
        conn = await connect(url)
        try:
            applied = await migrate(conn)
        finally:
            await conn.close()
        if applied:
            log.info("migrations_applied", files=applied)
        if supervise and embedded is not None:
            watcher = asyncio.create_task(supervise_server(embedded), name="embedded-postgres")
        yield url
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if embedded is not None:
            if await asyncio.to_thread(embedded.stop):
                log.info("embedded_postgres_stopped", data_dir=str(embedded.pgdata))
            else:  # another process still uses the server it started or adopted
                log.info("embedded_postgres_left_running", data_dir=str(embedded.pgdata))
