"""The `cryptoetl` command at start-up, as a real subprocess: a bad setting or an unreachable
database is one line and an exit status; `migrate` applies the files once."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import asyncpg
import pytest

from cryptoetl.db.migrate import load_migrations
from tests.support.process import CRYPTOETL, clean_env, free_port


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_cli_stops_with_one_line_and_status_2(tmp_path: Path, command: str) -> None:
    """`API_PORT=abc cryptoetl serve` prints one line naming API_PORT, exit status 2."""
    result = subprocess.run(
        [CRYPTOETL, command],
        env=clean_env(API_PORT="abc"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cryptoetl: configuration error: API_PORT:")
    assert "Traceback" not in result.stderr


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
