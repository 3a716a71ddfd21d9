"""The embedded PostgreSQL supervisor on a server of its own: killed with -9 (lock files left
behind, the dead postmaster possibly never reaped), it is started again and answers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import asyncpg
import pytest

from cryptoetl.db.embedded import EmbeddedPostgres
from cryptoetl.db.supervise import supervise
from tests.support.api_data import eventually


@pytest.mark.slow
async def test_a_killed_embedded_server_is_started_again(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "own")
    url = await asyncio.to_thread(server.start)
    watcher = asyncio.create_task(supervise(server, every=0.2, backoff=(0.2,)))
    try:
        old = server.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)

        async def answers() -> bool:
            try:
                conn = await asyncpg.connect(url, timeout=2)
            except (OSError, asyncpg.PostgresError):
                return False
            await conn.close()
            return True

        assert await eventually(lambda: asyncio.sleep(0.2, server.pid != old), bool, within=60)
        assert await eventually(answers, bool, within=30)
        assert server.running()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await asyncio.to_thread(server.stop)
