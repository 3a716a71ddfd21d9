"""The test harness: one PostgreSQL per session, a fresh database per test, the real app.

Tests are grouped by what they need: `unit/` (no database), `db/` (the real PostgreSQL, the app
in process), `e2e/` (real `cryptoetl` subprocesses, a browser, the built wheel); what they share
is in `support/`.

- `pg_server_url`: an embedded PostgreSQL started once per session (or `TEST_DATABASE_URL`).
- `db_url`: a new database for the test, cloned from a migrated template (fast), dropped after.
- `pool`: an asyncpg pool on that database.
- `make_settings(...)`: Settings pointing at that database, with no `.env` and no stray env.
- `make_client(settings, **options)`: the real app (`create_app(settings, **options)`),
  lifespan and all, through `httpx.ASGITransport`.
- `serve(env)`: a real `cryptoetl serve` subprocess on a free port, stopped at teardown.
- `upstream`: the loopback CoinGecko + CoinPaprika servers of `tests/support/upstream.py`.
- `source_settings(...)`: Settings pointing both HTTP sources at `upstream`, with fast retries
  and no pacing (no database needed); keyword arguments override any field.
- `loaded_fixtures`: this test's database after the three sources' fixtures went through the
  real pipeline (`tests/support/dashboard_data.py`); the settings used.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import structlog

from cryptoetl.config import Settings
from cryptoetl.db.embedded import EmbeddedPostgres
from cryptoetl.db.migrate import migrate
from cryptoetl.db.pool import Pool, open_pool, with_database
from cryptoetl.sources import load_settings
from tests.support.dashboard_data import fixture_settings, load_fixtures
from tests.support.process import ServeProcess, clean_env, start_serve
from tests.support.upstream import Upstream

# Keep the embedded server's runtime files out of the user's runtime dir and quiet
# platformdirs' RuntimeDirWarning (pytest turns warnings into errors). The directory is this
# run's own and goes when the run ends (every server of the run is stopped by then).
if not os.environ.get("XDG_RUNTIME_DIR"):
    _runtime_dir = tempfile.mkdtemp(prefix="cryptoetl-test-runtime-")
    os.environ["XDG_RUNTIME_DIR"] = _runtime_dir
    atexit.register(shutil.rmtree, _runtime_dir, ignore_errors=True)
# A developer's own settings must not leak into the tests.
for _name in set(os.environ) - set(clean_env()):
    del os.environ[_name]

TEMPLATE_DB = "cryptoetl_test_template"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Every test starts and ends with the same logging set-up: a test that configures logging
    (the app, `configure_logging`) leaves no handler, level or structlog config to the next."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog_config = structlog.get_config()
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
        structlog.configure(**structlog_config)
        structlog.contextvars.clear_contextvars()


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's PostgreSQL server: `TEST_DATABASE_URL`, or an embedded one."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


async def _create_template(server_url: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await conn.close()
    template = await asyncpg.connect(with_database(server_url, TEMPLATE_DB))
    try:
        await migrate(template)
    finally:
        await template.close()


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> str:
    """A database with every migration applied, cloned for each test."""
    asyncio.run(_create_template(pg_server_url))
    return TEMPLATE_DB


async def create_test_database(server_url: str, template: str | None = TEMPLATE_DB) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(server_url)
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()
    return name


async def drop_test_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def db_url(pg_server_url: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test."""
    name = await create_test_database(pg_server_url, template_db)
    try:
        yield with_database(pg_server_url, name)
    finally:
        await drop_test_database(pg_server_url, name)


@pytest.fixture
async def empty_db_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh database with no migration applied."""
    name = await create_test_database(pg_server_url, template=None)
    try:
        yield with_database(pg_server_url, name)
    finally:
        await drop_test_database(pg_server_url, name)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[Pool]:
    async with open_pool(db_url, min_size=1, max_size=4) as pool:
        yield pool


@pytest.fixture
def make_settings(db_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for this test's database; keyword arguments override any field."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": db_url,
            "cryptoetl_data_dir": tmp_path / "data",
            "etl_run_on_startup": False,
            "log_format": "json",
        }
        values.update(overrides)
        return load_settings(env_file=None, **values)

    return make


@pytest.fixture
def make_client() -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    """The real app for `settings`, lifespan included, as an in-process httpx client;
    keyword arguments go to `create_app` (`etl=open_etl` adds the scheduler and the trigger)."""
    from cryptoetl.app import create_app

    @asynccontextmanager
    async def make(settings: Settings, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings, **options)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                c.app = app  # type: ignore[attr-defined]
                yield c

    return make


@pytest.fixture
async def client(
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]],
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on this test's database with default settings."""
    async with make_client(make_settings()) as c:
        yield c


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start real `cryptoetl serve` processes; every one is stopped at teardown."""
    started: list[ServeProcess] = []

    def start(env: dict[str, str] | None = None, **kwargs: Any) -> ServeProcess:
        log_path = tmp_path / f"serve-{len(started)}.log"
        process = start_serve(env or {}, log_path, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """Both fake APIs on a free loopback port, every request recorded; closed after the test."""
    server = await Upstream().start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def source_settings(upstream: Upstream, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for the HTTP sources against `upstream`: quick retries, no pacing."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "cryptoetl_data_dir": tmp_path / "data",
            "log_format": "json",
            "coingecko_base_url": upstream.coingecko_url,
            "coinpaprika_base_url": upstream.coinpaprika_url,
            "coingecko_pages": 1,
            "coingecko_requests_per_minute": 60_000,
            "coinpaprika_requests_per_minute": 60_000,
            "rate_limit_delay": 0,
            "initial_retry_delay": 0.05,
            "max_retry_delay": 0.2,
            "http_connect_timeout": 2,
            "http_read_timeout": 2,
        }
        values.update(overrides)
        return load_settings(env_file=None, **values)

    return make


@pytest.fixture
async def loaded_fixtures(
    source_settings: Callable[..., Settings],
    db_url: str,
    pool: Pool,
    upstream: Upstream,
    tmp_path: Path,
) -> Settings:
    """This test's database after two real pipeline runs over the three sources' fixtures
    (`tests/support/dashboard_data.py`: CoinPaprika failed last, CSV partial first); the
    settings."""
    settings = fixture_settings(source_settings, db_url, tmp_path)
    await load_fixtures(settings, pool, upstream)
    return settings
