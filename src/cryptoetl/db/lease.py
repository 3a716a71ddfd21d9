"""Queries on `scheduler_lease`: the row that says which replica runs scheduled ETL.

A lease is held by `holder` until `expires_at`; all times are the database's clock, so replicas
whose clocks disagree still agree on who leads. `fencing_token` grows by one every time the
lease passes to a new term (another holder, or the same holder after its lease lapsed), so an
action checked against the token of a term that ended cannot pass (`hold`).

Why a row and not `pg_try_advisory_lock`: a session advisory lock lives on one connection, and
a pooled connection can be closed, reset or replaced under the holder without it noticing, so
two replicas could both believe they lead. The row's expiry bounds how long a holder that
stopped renewing (dead, paused, cut off) keeps the lease, whatever happened to its connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptoetl.db.pool import Connection

ETL_LEASE = "etl"


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """The lease as the database holds it; `now` is the database's clock at the read."""

    name: str
    holder: str | None
    fencing_token: int
    acquired_at: datetime | None
    renewed_at: datetime | None
    expires_at: datetime
    now: datetime

    @property
    def leader(self) -> str | None:
        """The holder while the lease is unexpired, else None (nobody leads)."""
        return self.holder if self.holder is not None and self.expires_at > self.now else None


_RETURNING = "name, holder, fencing_token, acquired_at, renewed_at, expires_at, clock_timestamp()"


async def ensure(conn: Connection, name: str) -> None:
    """Create the lease row `name` when it is missing (the migration creates `etl`)."""
    await conn.execute(
        "INSERT INTO scheduler_lease (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name
    )


async def acquire(
    conn: Connection, name: str, holder: str, seconds: float, *, dead_holder: str | None = None
) -> LeaseRow | None:
    """Take the lease, or renew it when it is already ours; None when another holder has it.

    One statement: it succeeds when the lease is expired or held by `holder` (or by
    `dead_holder`, a holder the caller knows to be dead), sets the expiry `seconds` from now,
    and starts a new term (fencing token + 1, `acquired_at` now) unless `holder` held an
    unexpired lease. Two replicas racing for an expired lease: the row lock lets one update
    win; the other re-checks the row it waited for, finds it held, gets None.
    """
    row = await conn.fetchrow(
        f"""
        UPDATE scheduler_lease
        SET fencing_token = CASE WHEN holder = $2 AND expires_at > clock_timestamp()
                                 THEN fencing_token ELSE fencing_token + 1 END,
            acquired_at = CASE WHEN holder = $2 AND expires_at > clock_timestamp()
                               THEN acquired_at ELSE clock_timestamp() END,
            holder = $2,
            renewed_at = clock_timestamp(),
            expires_at = clock_timestamp() + make_interval(secs => $3)
        WHERE name = $1 AND (holder = $2 OR holder IS NULL OR expires_at <= clock_timestamp()
                             OR holder = $4)
        RETURNING {_RETURNING}
        """,  # noqa: S608 - a constant column list, no values
        name,
        holder,
        float(seconds),
        dead_holder,
    )
    return LeaseRow(*row) if row is not None else None


async def release(conn: Connection, name: str, holder: str, fencing_token: int) -> bool:
    """End our term now (the holder stays named, expired), so a successor need not wait out the
    expiry; False when the lease was no longer ours."""
    result = await conn.execute(
        """
        UPDATE scheduler_lease SET expires_at = clock_timestamp(), renewed_at = clock_timestamp()
        WHERE name = $1 AND holder = $2 AND fencing_token = $3
              AND expires_at > clock_timestamp()
        """,
        name,
        holder,
        fencing_token,
    )
    return result == "UPDATE 1"


async def hold(conn: Connection, name: str, holder: str, fencing_token: int) -> bool:
    """True when `holder` still holds the unexpired lease with `fencing_token`.

    Call it inside the transaction of the action it guards: the row stays share-locked until
    that transaction ends, so the lease cannot pass to another replica in between.
    """
    found = await conn.fetchval(
        """
        SELECT true FROM scheduler_lease
        WHERE name = $1 AND holder = $2 AND fencing_token = $3
              AND expires_at > clock_timestamp()
        FOR SHARE
        """,
        name,
        holder,
        fencing_token,
    )
    return bool(found)


async def read(conn: Connection, name: str = ETL_LEASE) -> LeaseRow | None:
    """The lease row as it is now (None when the row is missing)."""
    row = await conn.fetchrow(
        f"SELECT {_RETURNING} FROM scheduler_lease WHERE name = $1",  # noqa: S608
        name,
    )
    return LeaseRow(*row) if row is not None else None
