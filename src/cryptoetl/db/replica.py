"""Reads from a PostgreSQL hot standby (`DATABASE_READ_URL`), writes to the primary.

Routing is explicit: code that only reads takes a `ReadPool` (the API's and the dashboard's
read routes); everything that writes (loads, runs, leases, pins, maintenance) takes the
primary's `Pool` and never sees the standby.

`ReplicaMonitor` checks the standby every `interval` seconds on its own pool and keeps its
`ReplicaState`: reachable? in recovery? how far behind? The lag is 0 when the standby has
replayed everything the primary had written when asked (`pg_last_wal_replay_lsn()` >= the
primary's `pg_current_wal_lsn()`), else `now() - pg_last_xact_replay_timestamp()`, so an idle,
caught-up standby does not look behind just because nothing happened lately. The standby is
used while it answers, is in recovery and lags at most `max_lag` seconds; otherwise reads go to
the primary and `state.reason` says why.

`ReadPool.acquire()` also falls back by itself: a standby that cannot give a connection (it
was just stopped) is marked down on the spot and the read is served by the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from cryptoetl.db.pool import (
    DATABASE_ERRORS,
    DATABASE_UNAVAILABLE,
    Connection,
    Pool,
    create_pool,
    describe_target,
    reason_of,
)
from cryptoetl.errors import describe

log = structlog.get_logger(__name__)

CHECK_INTERVAL = 1.0
CHECK_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """What the last check found. `usable`: reads go to the standby."""

    target: str
    connected: bool = False
    in_recovery: bool | None = None
    lag_seconds: float | None = None
    usable: bool = False
    reason: str | None = "not checked yet"
    checked_at: datetime | None = None


async def measure(replica: Connection, primary: Connection | None) -> tuple[bool, float | None]:
    """(in recovery, lag in seconds or None when unknown) of `replica` behind `primary`."""
    primary_lsn = None
    if primary is not None:
        with contextlib.suppress(*DATABASE_ERRORS):
            primary_lsn = await primary.fetchval(
                "SELECT pg_current_wal_lsn()", timeout=CHECK_TIMEOUT
            )
    row = await replica.fetchrow(
        """
        SELECT pg_is_in_recovery() AS in_recovery,
               pg_last_wal_replay_lsn() AS replayed,
               extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS behind
        """,
        timeout=CHECK_TIMEOUT,
    )
    assert row is not None  # noqa: S101 - a SELECT without FROM returns one row
    if not row["in_recovery"]:
        return False, None
    if primary_lsn is not None and row["replayed"] is not None and row["replayed"] >= primary_lsn:
        return True, 0.0
    behind = row["behind"]
    return True, None if behind is None else max(0.0, float(behind))


class ReplicaMonitor:
    """The standby's pool and state, checked every `interval` seconds until `aclose()`."""

    def __init__(
        self, url: str, primary: Pool, *, max_lag: float, interval: float = CHECK_INTERVAL
    ) -> None:
        self.url = url
        self.primary = primary
        self.max_lag = max_lag
        self.interval = interval
        self.state = ReplicaState(target=describe_target(url))
        self.pool: Pool | None = None
        self._task: asyncio.Task[None] | None = None
        self._checked = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cryptoetl-replica-monitor")

    async def first_check(self, within: float) -> None:
        """Wait (at most `within` seconds) for the first check, so reads start on the standby."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._checked.wait(), within)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    def mark_down(self, exc: BaseException) -> None:
        """A read could not get a standby connection: stop sending reads there until the next
        check finds it back."""
        reason = f"the read replica at {self.state.target} does not answer: {reason_of(exc)}"
        if self.state.usable:
            log.warning("read_replica_down", reason=reason)
        self.state = replace(self.state, connected=False, usable=False, reason=reason)

    async def check(self) -> ReplicaState:
        """Check the standby now; the new state (also kept in `self.state`)."""
        now = datetime.now(UTC)
        target = self.state.target
        try:
            if self.pool is None:
                self.pool = await create_pool(self.url, min_size=1, max_size=10)
            async with self.pool.acquire(timeout=CHECK_TIMEOUT) as replica:
                try:
                    async with self.primary.acquire(timeout=CHECK_TIMEOUT) as primary:
                        in_recovery, lag = await measure(replica, primary)
                except DATABASE_UNAVAILABLE:  # the primary is down: judge by the clock alone
                    in_recovery, lag = await measure(replica, None)
        except DATABASE_ERRORS as exc:
            failure = f"the read replica at {target} does not answer: {reason_of(exc)}"
            return ReplicaState(target, reason=failure, checked_at=now)
        reason: str | None = None
        if not in_recovery:
            reason = f"the read replica at {target} is not a standby (pg_is_in_recovery() is false)"
        elif lag is None:
            reason = f"the read replica at {target} has not replayed a transaction yet"
        elif lag > self.max_lag:
            reason = (
                f"the read replica at {target} lags {lag:.1f} s behind the primary "
                f"(READ_REPLICA_MAX_LAG_SECONDS={self.max_lag:g})"
            )
        return ReplicaState(target, True, in_recovery, lag, reason is None, reason, now)

    async def _run(self) -> None:
        while True:
            try:
                state = await self.check()
            except Exception as exc:  # a bug must not freeze the state: stop using the standby
                log.exception("read_replica_check_failed")
                state = ReplicaState(
                    self.state.target,
                    reason=f"the read replica could not be checked: {describe(exc)}",
                    checked_at=datetime.now(UTC),
                )
            if state.usable != self.state.usable or state.reason != self.state.reason:
                event = "read_replica_in_use" if state.usable else "read_replica_not_used"
                log.info(event, reason=state.reason, lag_seconds=state.lag_seconds)
            self.state = state
            self._checked.set()
            await asyncio.sleep(self.interval)


class ReadPool:
    """Where reads go: the standby while `monitor` says it is usable, else the primary."""

    def __init__(self, primary: Pool, monitor: ReplicaMonitor | None = None) -> None:
        self.primary = primary
        self.monitor = monitor

    @property
    def on_replica(self) -> bool:
        """True when a read starting now goes to the standby."""
        monitor = self.monitor
        return monitor is not None and monitor.pool is not None and monitor.state.usable

    def figures(self) -> tuple[bool, bool, float | None]:
        """(standby connected, reads go there, its lag) as last checked, for `/metrics`."""
        if self.monitor is None:
            return False, False, None
        state = self.monitor.state
        return state.connected, self.on_replica, state.lag_seconds

    @asynccontextmanager
    async def acquire(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - asyncpg's Pool.acquire signature
    ) -> AsyncIterator[Connection]:
        monitor = self.monitor
        if monitor is not None and monitor.pool is not None and monitor.state.usable:
            standby = monitor.pool
            try:
                conn = await standby.acquire(timeout=timeout)
            except DATABASE_UNAVAILABLE as exc:
                monitor.mark_down(exc)
            else:
                try:
                    yield conn
                finally:
                    await standby.release(conn)
                return
        async with self.primary.acquire(timeout=timeout) as conn:
            yield conn


@asynccontextmanager
async def open_reads(
    primary: Pool, url: str | None, *, max_lag: float, interval: float = CHECK_INTERVAL
) -> AsyncIterator[ReadPool]:
    """The `ReadPool` of the process: on the standby at `url` when given (monitored until the
    block ends), else on the primary alone."""
    if url is None:
        yield ReadPool(primary)
        return
    monitor = ReplicaMonitor(url, primary, max_lag=max_lag, interval=interval)
    monitor.start()
    try:
        await monitor.first_check(within=CHECK_TIMEOUT * 2)
        yield ReadPool(primary, monitor)
    finally:
        await monitor.aclose()
