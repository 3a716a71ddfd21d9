"""The data versions of `unified_crypto_data`, kept in memory and current by LISTEN/NOTIFY.

`source_stats` holds, per source, the exact row count and a version bumped by every write
(0002); a trigger announces each change on `cryptoetl_data_changed` at commit (0004).
`VersionWatcher` listens on a connection of its own:

- `current()` is the versions as last read, or None whenever they may be out of date: before
  the first read, from the moment a notification arrives until the re-read that follows it
  completes, and while the listening connection is down (callers then read the table
  themselves, as if there were no watcher);
- the versions are also re-read every `recheck` seconds on that connection, which proves it
  alive: a connection that died silently (no notification can come) costs at most that long;
- the connection is re-opened with backoff, forever, until `aclose()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog

from cryptoetl.db.pool import DATABASE_ERRORS, Connection, RawConnection, connect
from cryptoetl.errors import DatabaseUnavailableError, describe

log = structlog.get_logger(__name__)

CHANNEL = "cryptoetl_data_changed"
RECHECK_SECONDS = 5.0
QUERY_TIMEOUT = 5.0
MAX_BACKOFF = 30.0


@dataclass(frozen=True, slots=True, order=True)
class SourceVersion:
    source: str
    row_count: int
    data_version: int


Versions = tuple[SourceVersion, ...]


async def fetch_versions(conn: Connection) -> Versions:
    """Row count and data version of every source, read now."""
    rows = await conn.fetch("SELECT source, row_count, data_version FROM source_stats")
    return tuple(sorted(SourceVersion(r[0], r[1], r[2]) for r in rows))


class VersionWatcher:
    """Knows the current data versions without a query, or says it does not."""

    def __init__(self, url: str, *, recheck: float = RECHECK_SECONDS) -> None:
        self.url = url
        self.recheck = recheck
        self._versions: Versions | None = None
        self._generation = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def current(self) -> Versions | None:
        return self._versions

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cryptoetl-version-watcher")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._versions = None

    def _notified(self, *_: Any) -> None:
        self._generation += 1
        self._versions = None
        self._wake.set()

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            try:
                conn = await connect(self.url)
            except DatabaseUnavailableError as exc:
                log.warning("version_watcher_connect_failed", error=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 1.0
            try:
                await self._watch(conn)
            except DATABASE_ERRORS as exc:
                log.warning("version_watcher_lost", error=describe(exc))
            finally:
                self._versions = None
                conn.terminate()
            await asyncio.sleep(backoff)

    async def _watch(self, conn: RawConnection) -> None:
        lost = asyncio.Event()

        def terminated(_: object) -> None:
            lost.set()
            self._wake.set()

        conn.add_termination_listener(terminated)
        await conn.add_listener(CHANNEL, self._notified)
        while not lost.is_set():
            # Read under the generation seen before the query: a notification that lands
            # while it runs leaves the (possibly older) result unused.
            generation = self._generation
            async with asyncio.timeout(QUERY_TIMEOUT):
                versions = await fetch_versions(conn)
            if generation == self._generation:
                self._versions = versions
            self._wake.clear()
            if generation != self._generation:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.recheck)


@asynccontextmanager
async def watch_versions(
    url: str, *, recheck: float = RECHECK_SECONDS
) -> AsyncIterator[VersionWatcher]:
    watcher = VersionWatcher(url, recheck=recheck)
    watcher.start()
    try:
        yield watcher
    finally:
        await watcher.aclose()
