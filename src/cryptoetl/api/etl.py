"""What the API needs from the ETL side of the service, as a Protocol (no import of it).

The API never imports the pipeline or the sources. `create_app(settings, etl=open_etl)` is given
a factory (the CLI passes `cryptoetl.etl.service.open_etl`), which the lifespan enters once the
pool is open; what it yields is put on `app.state.etl` and used through `EtlControl` only.
Without a factory the app serves the API alone (no scheduler; the admin trigger answers 503).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.db.runs import StartedRun
from cryptoetl.metrics import Metrics
from cryptoetl.models import BackfillRequest, BackfillStarted

NO_ETL = "this process runs no ETL (the app was created without it)"


class EtlControl(Protocol):
    """The service's ETL: the admin trigger and the scheduler's leader state."""

    @property
    def replica(self) -> str:
        """This replica's identity (host:pid:token): the lease holder name and run owner."""
        ...

    @property
    def is_leader(self) -> bool:
        """Whether this replica holds the scheduler lease (runs scheduled ETL)."""
        ...

    async def trigger(self, sources: Sequence[str] | None) -> Mapping[str, StartedRun]:
        """Start a manual run of `sources` (None: ENABLED_SOURCES) in the background.

        Returns the started runs by source once their rows exist. Raises `RunInProgressError`
        when any of them is already running (nothing is started then), `ServiceStoppingError`
        during shutdown, and the database's errors when it cannot be reached.
        """
        ...


class BackfillControl(Protocol):
    """The service's backfills (POST /admin/backfill)."""

    @property
    def replica(self) -> str: ...

    async def backfill(self, request: BackfillRequest) -> BackfillStarted:
        """Start a backfill in the background; returns once its run row exists.

        Raises `BackfillRequestError` (a request that cannot run as asked), `RunInProgressError`
        (a backfill of the source is running), `ServiceStoppingError`.
        """
        ...


EtlFactory = Callable[[Settings, Pool, Metrics], AbstractAsyncContextManager[EtlControl]]
"""Builds the ETL for an app: settings, the app's pool, its metrics (the sources' events)."""


async def _etl(request: Request) -> EtlControl:
    etl: EtlControl | None = getattr(request.app.state, "etl", None)
    if etl is None:
        raise HTTPException(503, NO_ETL)
    return etl


EtlDep = Annotated[EtlControl, Depends(_etl)]


async def _backfills(request: Request) -> BackfillControl:
    etl = getattr(request.app.state, "etl", None)
    if etl is None or not callable(getattr(etl, "backfill", None)):
        raise HTTPException(503, NO_ETL)
    control: BackfillControl = etl
    return control


BackfillDep = Annotated[BackfillControl, Depends(_backfills)]
