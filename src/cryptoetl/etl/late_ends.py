"""Run ends that could not be written because the database was down, written when it is back.

A run whose database goes away mid-load fails, but its end cannot be recorded then: its row
would stay `running`, and since its owner (this process) is alive, nobody else may reap it.
So the run hands its end to `LateEnds`, which tries again every `every` seconds until the
database answers, and writes it with the run's own reason plus "recorded late". `Pipeline.begin`
also flushes it first, so a trigger or a schedule tick never waits behind such a run.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog

from cryptoetl.db import runs
from cryptoetl.db.pool import DATABASE_ERRORS, Pool
from cryptoetl.errors import describe
from cryptoetl.models import RunStatus

log = structlog.get_logger(__name__)

RETRY_SECONDS = 1.0
LATE = "recorded late: the database was unavailable when the run ended"


@dataclass(frozen=True, slots=True)
class _End:
    status: RunStatus
    error: str | None
    read_to_end: bool


class LateEnds:
    """The ends of this process's runs still to be written (see the module docstring)."""

    def __init__(self, pool: Pool, *, every: float = RETRY_SECONDS) -> None:
        self.pool = pool
        self.every = every
        self._pending: dict[int, _End] = {}
        self._writer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def run_ids(self) -> set[int]:
        return set(self._pending)

    def add(self, run_id: int, status: RunStatus, error: str | None, read_to_end: bool) -> None:
        """Keep `run_id`'s end and write it as soon as the database answers."""
        self._pending[run_id] = _End(status, error, read_to_end)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._keep_trying(), name="etl-late-ends")

    async def flush(self) -> None:
        """Write every pending end now; raises the database's error when it is still down."""
        async with self._lock:
            for run_id, end in list(self._pending.items()):
                error = f"{end.error}; {LATE}" if end.error else LATE
                async with self.pool.acquire() as conn, conn.transaction():
                    finished = await runs.end(
                        conn, run_id, end.status, error, read_to_end=end.read_to_end
                    )
                del self._pending[run_id]
                if finished is not None:  # else it was ended meanwhile: keep what is there
                    log.warning(
                        "late_run_end_recorded",
                        run_id=run_id,
                        source=finished.source,
                        status=finished.status.value,
                        error=error,
                    )

    async def _keep_trying(self) -> None:
        while self._pending:
            await asyncio.sleep(self.every)
            try:
                await self.flush()
            except DATABASE_ERRORS as exc:
                log.info("late_run_end_waiting", runs=sorted(self._pending), error=describe(exc))

    async def close(self) -> None:
        """Try once more, then stop trying."""
        if self._pending:
            with contextlib.suppress(*DATABASE_ERRORS):
                await self.flush()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
