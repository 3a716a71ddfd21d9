"""Connections and the pool: the types every query module takes, the errors that mean the
database failed, and the one asyncpg pool of the process.

`open_pool(url)` yields the pool (codecs and UTC set on every connection); `connect(url)` one
checked connection. Errors come out as one-line `DatabaseUnavailableError`s that name the host
and port and never the password. Starting a server and migrating it is `cryptoetl.db.server`.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import orjson
import structlog

from cryptoetl.errors import DatabaseError, DatabaseUnavailableError

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 10.0
PING_TIMEOUT = 2.0
# The one list of what "the database is unavailable" means: it cannot be reached, it went away,
# or it is starting up or shutting down. A request answers 503 (`cryptoetl.api.errors`), a page
# its 503 page, the ETL waits for the database to come back.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.ConnectionDoesNotExistError,
    # what a pooled connection raises when the server's socket vanished under it mid-query
    asyncpg.InternalClientError,
    DatabaseError,
)
# Anything the database can fail with: unavailable, or a statement it refused. The ETL records
# these as a run's failure (not a bug); anything else is a bug.
DATABASE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_UNAVAILABLE, asyncpg.PostgresError)

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


async def ping(pool: Pool, within: float = PING_TIMEOUT) -> bool:
    """True when a pooled connection answers `SELECT 1` within `within` seconds."""
    try:
        async with pool.acquire(timeout=within) as conn:
            return bool(await conn.fetchval("SELECT 1", timeout=within))
    except DATABASE_ERRORS:
        return False


class AcceptsConnections:
    """Does the server accept a new connection? Asked at most once every `every` seconds.

    A pooled connection is not enough to tell: during a "smart" shutdown (SIGTERM) PostgreSQL
    keeps the sessions it has and refuses every new one, so a pool looks fine until the
    moment the server goes away. Health asks this too.
    """

    def __init__(self, url: str, *, every: float = 1.0, within: float = PING_TIMEOUT) -> None:
        self.url = url
        self.every = every
        self.within = within
        self._answer = True
        self._asked_at: float | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> bool:
        async with self._lock:
            now = time.monotonic()
            if self._asked_at is not None and now - self._asked_at < self.every:
                return self._answer
            try:
                conn = await asyncpg.connect(self.url, timeout=self.within)
            except DATABASE_ERRORS as exc:
                if self._answer:
                    log.warning("database_refuses_connections", error=_reason(exc))
                self._answer = False
            else:
                await conn.close(timeout=self.within)
                self._answer = True
            self._asked_at = time.monotonic()
            return self._answer


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
