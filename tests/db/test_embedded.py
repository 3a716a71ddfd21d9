"""The embedded PostgreSQL: starts, keeps its data across restarts, stops without leftovers."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import asyncpg

from cryptoetl.db.embedded import EmbeddedPostgres
from tests.support.process import postmasters


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
