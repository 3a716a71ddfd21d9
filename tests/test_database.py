"""Connecting: a clear one-line error for an unreachable server, with the password masked."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import asyncpg
import pytest

from cryptoetl.db.migrate import load_migrations
from cryptoetl.db.pool import describe_target
from cryptoetl.db.server import prepare_database
from cryptoetl.errors import DatabaseUnavailableError
from cryptoetl.log import SecretMasker
from cryptoetl.sources import load_settings
from tests.support import CRYPTOETL, clean_env, free_port


def test_describe_target_never_shows_the_password() -> None:
    """Messages name host, port and database, nothing else."""
    url = "postgresql://app:s3cret@db.example:6543/market"
    assert describe_target(url) == "db.example:6543/market"
    assert (
        describe_target("postgresql://postgres:@/postgres?host=/tmp/x") == "socket /tmp/x/postgres"
    )
    assert SecretMasker().mask_text(url) == "postgresql://app:***@db.example:6543/market"


async def test_unreachable_server_raises_a_clear_error() -> None:
    """Nothing listens on the port: the error names host and port, not the password."""
    port = free_port()
    settings = load_settings(
        env_file=None, database_url=f"postgresql://app:pw-secret-1@127.0.0.1:{port}/x"
    )
    with pytest.raises(DatabaseUnavailableError) as caught:
        async with prepare_database(settings):
            pass
    message = str(caught.value)
    assert f"127.0.0.1:{port}/x" in message
    assert "connection refused" in message
    assert "pw-secret-1" not in message


async def test_wrong_database_name_is_reported(pg_server_url: str) -> None:
    """A database that does not exist is named in the error."""
    url = pg_server_url.replace("/postgres?", "/no_such_db?")
    settings = load_settings(env_file=None, database_url=url)
    with pytest.raises(DatabaseUnavailableError, match='database "no_such_db" does not exist'):
        async with prepare_database(settings):
            pass


def test_cli_with_unreachable_database_prints_one_line(tmp_path: Path) -> None:
    """`cryptoetl serve` against a dead DATABASE_URL: one line on stderr, exit 1."""
    port = free_port()
    env = clean_env(
        DATABASE_URL=f"postgresql://app:pw-secret-2@127.0.0.1:{port}/x",
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
    )
    result = subprocess.run(
        [CRYPTOETL, "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"cryptoetl: cannot connect to PostgreSQL at 127.0.0.1:{port}/x: "
        "connection refused (is PostgreSQL running and listening there?)"
    ]


async def test_migrate_command_against_a_server(pg_server_url: str, tmp_path: Path) -> None:
    """`cryptoetl migrate` applies the files to DATABASE_URL and says so; a rerun is a no-op."""
    from tests.conftest import create_test_database, drop_test_database

    name = await create_test_database(pg_server_url, template=None)
    try:
        url = pg_server_url.replace("/postgres?", f"/{name}?")
        env = clean_env(DATABASE_URL=url, LOG_FORMAT="json")
        applied: list[list[tuple[int, str, object]]] = []
        for _ in range(2):
            result = await asyncio.to_thread(
                subprocess.run,
                [CRYPTOETL, "migrate"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert "migrations are up to date" in result.stderr
            conn = await asyncpg.connect(url)
            try:
                rows = await conn.fetch(
                    "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version"
                )
            finally:
                await conn.close()
            applied.append([tuple(row) for row in rows])
        files = load_migrations()
        assert [(v, c) for v, c, _ in applied[0]] == [(m.version, m.checksum) for m in files]
        assert applied[1] == applied[0]  # the rerun applied nothing again
    finally:
        await drop_test_database(pg_server_url, name)
