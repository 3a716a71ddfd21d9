"""Connecting to PostgreSQL: the embedded server or `DATABASE_URL`, a checked first connection,
migrations, and the one asyncpg pool of the process.

`prepare_database(settings)` yields a ready URL (server started, reachable, migrated);
`open_pool(url)` yields the pool. Errors come out as one-line `DatabaseError`s that name the
host and port and never the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import orjson
import structlog

from cryptoetl.config import Settings
from cryptoetl.db.embedded import EmbeddedPostgres
from cryptoetl.db.migrate import migrate
from cryptoetl.errors import DatabaseUnavailableError

log = structlog.get_logger(__name__)

APP_DATABASE = "cryptoetl"
CONNECT_TIMEOUT = 10.0
# Errors that mean the database could not be used, as opposed to a source or a bug failing.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    RawConnection: TypeAlias = asyncpg.Connection[asyncpg.Record]
    # What query modules take: a plain connection or one acquired from the pool.
    Connection: TypeAlias = RawConnection | PoolConnectionProxy[asyncpg.Record]
else:
    Pool = asyncpg.Pool
    RawConnection = asyncpg.Connection
    Connection = asyncpg.Connection


def describe_target(url: str) -> str:
    """`host:port/db` (or `socket DIR/db`) for messages: never the user's password."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    database = parts.path.lstrip("/") or "postgres"
    host = parts.hostname or (query.get("host") or [""])[0]
    try:
        port = parts.port or int((query.get("port") or ["5432"])[0])
    except ValueError:
        port = 5432
    if host.startswith("/"):
        return f"socket {host}/{database}"
    return f"{host or 'localhost'}:{port}/{database}"


def mask_url(url: str) -> str:
    """The URL with its password replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def with_database(url: str, database: str) -> str:
    """The same server URL, pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:.0f} s"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is PostgreSQL running and listening there?)"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


async def connect(url: str, *, within: float = CONNECT_TIMEOUT) -> RawConnection:
    """One connection, or `DatabaseUnavailableError` naming where it tried."""
    try:
        conn: RawConnection = await asyncpg.connect(url, timeout=within)
    except DATABASE_ERRORS as exc:
        raise DatabaseUnavailableError(describe_target(url), _reason(exc)) from None
    except ValueError as exc:  # a URL asyncpg cannot parse
        raise DatabaseUnavailableError(describe_target(url), f"invalid URL: {exc}") from None
    return conn


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
async def prepare_database(settings: Settings) -> AsyncIterator[str]:
    """Yield the URL of a reachable, migrated database; stop the embedded server on exit."""
    embedded: EmbeddedPostgres | None = None
    try:
        if settings.database_url is None:
            embedded = EmbeddedPostgres(settings.cryptoetl_data_dir)
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
        yield url
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
            log.info("embedded_postgres_stopped", data_dir=str(embedded.pgdata))


async def _init_connection(conn: RawConnection) -> None:
    def dumps(value: Any) -> str:
        return orjson.dumps(value).decode()

    await conn.set_type_codec("jsonb", encoder=dumps, decoder=orjson.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=dumps, decoder=orjson.loads, schema="pg_catalog")


async def _reset_connection(conn: RawConnection) -> None:
    """What a connection needs on its way back to the pool: only an unfinished transaction
    rolled back. asyncpg's default also sends `RESET ALL; CLOSE ALL; UNLISTEN *; ...`, one more
    round trip per checkout; cryptoetl never changes session state on a pooled connection
    (per-connection settings are made once in `init`, per-transaction ones with SET LOCAL,
    cursors live inside transactions), so it would reset nothing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


@asynccontextmanager
async def open_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> AsyncIterator[Pool]:
    """The process's asyncpg pool, with codecs and UTC set on every connection."""
    try:
        pool: Pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_reset_connection,
            timeout=CONNECT_TIMEOUT,
            server_settings={"timezone": "UTC", "application_name": "cryptoetl"},
        )
    except DATABASE_ERRORS as exc:
        raise DatabaseUnavailableError(describe_target(url), _reason(exc)) from None
    try:
        yield pool
    finally:
        await pool.close()
