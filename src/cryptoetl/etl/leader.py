"""One replica's side of the scheduler lease: take it, keep it, give it up, fence with it.

    async with LeaderLease(pool, holder, seconds=30) as lease:   # renews every 10 s
        if lease.is_leader:
            await pipeline.begin(None, RunTrigger.SCHEDULE, fence=lease.fence())

Every `renew_every` seconds (a third of the lease) the replica runs one `UPDATE` that takes the
lease when it is free or expired and renews it when it is ours (`cryptoetl.db.lease.acquire`).
With one replica it always leads; with N, the first to get the row leads and the others retry
quietly, so when the leader dies its lease runs out after `seconds` and another replica takes
over within about `seconds + renew_every`. A clean shutdown releases the lease so a successor
takes over at its next attempt. A holder on this host whose process is gone (killed, then
restarted) is replaced at once, without waiting out its lease.

`is_leader` is this process's belief, which can only be too modest: it lapses `seconds` after
the last successful renewal *began*. The authority is the database: `fence()` gives a check,
run inside the transaction that starts a scheduled run, that the lease is still ours with the
same fencing token, so a replica that was paused (or cut off) past its expiry, and whose lease
went to another replica meanwhile, starts nothing when it wakes up.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

import structlog

from cryptoetl.db import lease as lease_db
from cryptoetl.db.pool import DATABASE_ERRORS, Connection, Pool
from cryptoetl.errors import NotLeaderError, describe
from cryptoetl.etl.owner import Owner, owner_gone

log = structlog.get_logger(__name__)

# A check run inside the transaction that starts runs (`Pipeline.begin`), before any run row is
# inserted; it raises (`NotLeaderError`) to start nothing. `LeaderLease.fence()` makes one.
Fence = Callable[[Connection], Awaitable[None]]


class LeaderLease:
    """Holds (or waits for) the lease `name` for `holder`; an async context manager."""

    def __init__(
        self,
        pool: Pool,
        holder: str,
        *,
        seconds: float,
        name: str = lease_db.ETL_LEASE,
        renew_every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.holder = holder
        self.seconds = seconds
        self.name = name
        self.renew_every = renew_every if renew_every is not None else seconds / 3
        self._clock = clock
        self._token: int | None = None
        self._valid_until = float("-inf")
        self._leader: str | None = None
        self._settled = asyncio.Event()
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self._host = socket.gethostname()

    @property
    def is_leader(self) -> bool:
        """True while this replica holds the lease, as far as it knows."""
        return self._token is not None and self._clock() < self._valid_until

    @property
    def fencing_token(self) -> int | None:
        """The token of our current term; None when we do not lead."""
        return self._token if self.is_leader else None

    @property
    def leader(self) -> str | None:
        """The leader seen at the last attempt (this holder or another; None: nobody)."""
        return self.holder if self.is_leader else self._leader

    async def settled(self) -> None:
        """Wait until the first attempt has ended (either way)."""
        await self._settled.wait()

    async def attempt(self) -> bool:
        """Take or renew the lease once; return whether we lead now."""
        began = self._clock()
        try:
            async with asyncio.timeout(self.renew_every), self.pool.acquire() as conn:
                ours, current = await self._take(conn)
        except DATABASE_ERRORS as exc:
            if not self._failing:
                log.warning(
                    "scheduler_lease_unreachable", error=describe(exc), leader=self.is_leader
                )
            self._failing = True
            return self.is_leader
        finally:
            self._settled.set()
        self._failing = False
        if ours and current is not None:
            if current.fencing_token != self._token:
                log.info(
                    "scheduler_lease_acquired",
                    holder=self.holder,
                    term=current.fencing_token,
                    expires_at=current.expires_at.isoformat(),
                )
            self._token = current.fencing_token
            self._valid_until = began + self.seconds
        else:
            if self._token is not None:
                log.warning("scheduler_lease_lost", holder=self.holder, term=self._token)
            self._token = None
            self._leader = current.leader if current is not None else None
        return self.is_leader

    async def _take(self, conn: Connection) -> tuple[bool, lease_db.LeaseRow | None]:
        """One round: whether we hold the lease now, and the lease as it is."""
        taken = await lease_db.acquire(conn, self.name, self.holder, self.seconds)
        if taken is not None:
            return True, taken
        current = await lease_db.read(conn, self.name)
        dead = self._dead(current)
        if dead is None:
            return False, current
        taken = await lease_db.acquire(conn, self.name, self.holder, self.seconds, dead_holder=dead)
        if taken is None:  # another replica was quicker
            return False, await lease_db.read(conn, self.name)
        log.warning("scheduler_lease_taken_from_dead_holder", dead=dead)
        return True, taken

    def _dead(self, lease: lease_db.LeaseRow | None) -> str | None:
        """The lease's unexpired holder when it is a process of this host that is gone (killed
        and restarted, say): no need to wait out its lease. None otherwise."""
        if lease is None or lease.leader is None or lease.leader == self.holder:
            return None
        owner = Owner.parse(lease.leader)
        if owner is None or not owner_gone(owner, self._host):
            return None
        return lease.leader

    def fence(self) -> Fence:
        """A check for the transaction that starts a scheduled run: raises `NotLeaderError`
        unless the lease is still ours with the token we hold now (checked in the database)."""
        token = self.fencing_token
        if token is None:
            raise NotLeaderError(self.name, self.holder, self._token or 0)

        async def check(conn: Connection) -> None:
            if not await lease_db.hold(conn, self.name, self.holder, token):
                raise NotLeaderError(self.name, self.holder, token)

        return check

    async def release(self) -> None:
        """Give the lease up now (a clean shutdown), so a successor need not wait it out."""
        token, self._token = self._token, None
        if token is None:
            return
        try:
            async with asyncio.timeout(self.renew_every), self.pool.acquire() as conn:
                released = await lease_db.release(conn, self.name, self.holder, token)
        except DATABASE_ERRORS as exc:
            log.warning("scheduler_lease_not_released", error=describe(exc))
            return
        if released:
            log.info("scheduler_lease_released", holder=self.holder, term=token)

    async def _keep(self) -> None:
        while True:
            await self.attempt()
            await asyncio.sleep(self.renew_every)

    async def __aenter__(self) -> LeaderLease:
        with contextlib.suppress(*DATABASE_ERRORS):
            async with self.pool.acquire() as conn:
                await lease_db.ensure(conn, self.name)
        self._task = asyncio.create_task(self._keep(), name=f"lease-{self.name}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.release()
