"""The embedded PostgreSQL: starts, keeps its data across restarts, stops without leftovers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import asyncpg
import psutil
import pytest

from cryptoetl.db.embedded import EmbeddedPostgres, server_parameters
from tests.support.process import CRYPTOETL, clean_env, postmasters


async def _query(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def test_data_persists_across_restarts_and_stop_leaves_no_process(tmp_path: Path) -> None:
    """Start, write, stop; start again on the same directory and the row is still there."""
    server = EmbeddedPostgres(tmp_path / "data")
    url = server.start()
    assert url.startswith("postgresql://")
    asyncio.run(_query(url, "CREATE TABLE kept AS SELECT 42 AS v"))
    assert postmasters(server.pgdata)
    assert server.stop() is True
    assert postmasters(server.pgdata) == []

    again = EmbeddedPostgres(tmp_path / "data")
    url = again.start()
    try:
        assert asyncio.run(_query(url, "SELECT v FROM kept")) == 42
    finally:
        again.stop()
    assert postmasters(again.pgdata) == []
    server.stop()  # a second stop is harmless


def test_a_killed_owner_does_not_keep_the_server_from_stopping(tmp_path: Path) -> None:
    """A dead process's handle (left by kill -9) is pruned, so our stop really stops."""
    server = EmbeddedPostgres(tmp_path / "data")
    server.start()
    server.stop()
    dead_pid = 2**22 + 12345  # above the default pid_max: never a live process
    handles = server.pgdata / ".handle_pids.json"
    handles.write_text(json.dumps([dead_pid]))

    again = EmbeddedPostgres(tmp_path / "data")
    again.start()
    assert json.loads(handles.read_text()) == [os.getpid()]
    again.stop()
    assert postmasters(again.pgdata) == []


def test_a_second_handle_does_not_orphan_a_server_started_again(tmp_path: Path) -> None:
    """Two handles in one process (a test and the app's lifespan): one stops the server and
    starts it again; the other's stop must neither lose track of the new server (it ran on,
    one postmaster leaked per run) nor stop it under the handle that started it."""
    first = EmbeddedPostgres(tmp_path / "data")
    url = first.start()
    second = EmbeddedPostgres(tmp_path / "data")
    assert second.start() == url  # adopts the running server
    assert first.stop() is True  # an outage: the process lets go, the server stops
    assert postmasters(first.pgdata) == []
    url = first.start()
    restarted = first.pid
    assert second.stop() is True  # its server is gone; the new one is not its to stop
    assert [proc.pid for proc in postmasters(first.pgdata)] == [restarted]
    assert asyncio.run(_query(url, "SELECT 1")) == 1
    assert first.stop() is True
    assert postmasters(first.pgdata) == []
    assert not (first.pgdata / "postmaster.pid").exists()


@pytest.mark.slow
def test_stop_stops_the_server_another_command_started_again(tmp_path: Path) -> None:
    """The server dies under a handle and another `cryptoetl` command on the same data
    directory starts it again (and leaves it running, the handle's process still uses it):
    the handle's stop stops the server running now, not only the one it remembers."""
    data_dir = tmp_path / "data"
    server = EmbeddedPostgres(data_dir)
    server.start()
    old = server.pid
    assert old is not None
    os.kill(old, signal.SIGINT)  # a fast shutdown, not through the handle
    psutil.Process(old).wait(30)
    migrate = subprocess.run(
        [CRYPTOETL, "migrate"],
        env=clean_env(CRYPTOETL_DATA_DIR=str(data_dir), LOG_FORMAT="json"),
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert b"embedded_postgres_left_running" in migrate.stdout + migrate.stderr
    again = postmasters(server.pgdata)
    assert [proc.pid for proc in again] != [old]
    assert len(again) == 1
    assert server.stop() is True
    assert postmasters(server.pgdata) == []
    assert not (server.pgdata / "postmaster.pid").exists()


def test_the_server_runs_with_its_parameters_from_the_first_start(tmp_path: Path) -> None:
    """A new directory's server already runs with the given shared_buffers and checkpoint
    spacing (written with ALTER SYSTEM, restarted once); a changed value is taken at the next
    start; the server log stays in pgdata/log; stop leaves no postmaster."""
    parameters = server_parameters(48)
    assert parameters == {
        "shared_buffers": "48MB",
        "max_wal_size": "4GB",
        "checkpoint_timeout": "15min",
    }
    server = EmbeddedPostgres(tmp_path / "data", parameters)
    url = server.start()
    try:
        assert asyncio.run(_query(url, "SHOW shared_buffers")) == "48MB"
        assert asyncio.run(_query(url, "SHOW max_wal_size")) == "4GB"
        assert asyncio.run(_query(url, "SHOW checkpoint_timeout")) == "15min"
        assert (
            asyncio.run(_query(url, "SELECT count(*) FROM pg_settings WHERE pending_restart")) == 0
        )
        assert len(postmasters(server.pgdata)) == 1
    finally:
        assert server.stop() is True
    assert postmasters(server.pgdata) == []
    assert "database system is ready" in (server.pgdata / "log").read_text()

    again = EmbeddedPostgres(tmp_path / "data", server_parameters(64))
    url = again.start()
    try:
        assert asyncio.run(_query(url, "SHOW shared_buffers")) == "64MB"
    finally:
        again.stop()
    assert postmasters(again.pgdata) == []


def test_the_service_setting_reaches_the_embedded_server(tmp_path: Path) -> None:
    """EMBEDDED_SHARED_BUFFERS_MB is what `cryptoetl migrate` starts the server with."""
    env = clean_env(CRYPTOETL_DATA_DIR=str(tmp_path / "data"), EMBEDDED_SHARED_BUFFERS_MB="40")
    done = subprocess.run(
        [str(CRYPTOETL), "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    settings = (tmp_path / "data" / "pgdata" / "postgresql.auto.conf").read_text()
    assert "shared_buffers = '40MB'" in settings
    assert postmasters(tmp_path / "data" / "pgdata") == []
