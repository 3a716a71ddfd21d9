"""`create_app(settings)`: the FastAPI app and the lifespan that owns its resources.

Resources are entered on one `AsyncExitStack` and put on `app.state`; nothing lives in a
module global. With `database_url` given (the CLI prepares the database before serving) the
lifespan only opens the pool; without it, the lifespan prepares the database itself.

`app.state` holds: `settings`, `pool` (the primary: every write), `reads` (a
`db.replica.ReadPool`: the read replica when configured and usable, else the primary),
`versions` (the data versions, kept current by LISTEN/NOTIFY; see `db/versions.py`),
`accepts_connections` (does the server take new connections: health asks it), `metrics` (a
`cryptoetl.metrics.Metrics`, which is also
the `SourceEvents` to hand the pipeline), `caches` and `export_slots` (the data route's),
`started_at` (when this instance started; the health check's grace period for sources that
never ran), `pages` (the HTML pages' renderer, `cryptoetl.web`), and `etl` (what the `etl`
factory yielded, or None; see `api/etl.py`).

The lifespan's order: prepare the database (unless given), open the pool and the reads (the
replica's monitor, when `DATABASE_READ_URL` is set), mark the runs of
dead processes failed (`reap_dead_runs`), watch the data versions, then enter the ETL (the
scheduler, the leader lease). Leaving runs it backwards: the ETL stops first (its runs are
cancelled and recorded, the lease released) while the pool is still open, and the pool closes
last.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

import structlog
from fastapi import Depends, FastAPI

from cryptoetl import __version__
from cryptoetl.api.body_limit import BodyLimitMiddleware
from cryptoetl.api.cache import DataCaches
from cryptoetl.api.docs_pages import install_docs
from cryptoetl.api.errors import install_error_handlers
from cryptoetl.api.etl import EtlFactory
from cryptoetl.api.middleware import RequestIdMiddleware
from cryptoetl.api.openapi import install_openapi, operation_id
from cryptoetl.api.query_rules import check_query
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.routes import (
    admin,
    asset_admin,
    assets,
    data,
    health,
    lineage,
    metrics,
    rejected,
    runs,
    stats,
)
from cryptoetl.api.streaming import EXPORT_SLOTS
from cryptoetl.config import Settings
from cryptoetl.db.pool import DATABASE_ERRORS, AcceptsConnections, open_pool
from cryptoetl.db.replica import CHECK_INTERVAL, open_reads
from cryptoetl.db.server import prepare_database
from cryptoetl.db.versions import watch_versions
from cryptoetl.errors import describe
from cryptoetl.etl.reaper import reap_dead_runs
from cryptoetl.metrics import Metrics
from cryptoetl.web import asset as asset_page
from cryptoetl.web import dashboard
from cryptoetl.web import rejected as rejected_page
from cryptoetl.web.render import Pages

log = structlog.get_logger(__name__)

DESCRIPTION = """
A PostgreSQL history of cryptocurrency prices, market caps and volumes from CoinPaprika,
CoinGecko and CSV files. Every response carries `X-Request-ID`; errors are JSON with the
request id; a database outage answers 503 with `Retry-After`.

Data: `GET /api/v1/data`. One asset across sources: `GET /api/v1/assets`, `/api/v1/assets/{id}`,
`/api/v1/assets/{id}/history`, `/api/v1/asset-mappings`. ETL state: `/api/v1/health`,
`/api/v1/stats`, `/api/v1/runs`, `/api/v1/rejected`.
Prometheus metrics: `GET /metrics`. For people: the status page at `/`, one asset across
sources at `/assets/{id}`, the rejected records at `/rejected`.
"""


def create_app(
    settings: Settings,
    *,
    database_url: str | None = None,
    etl: EtlFactory | None = None,
    replica_check_seconds: float = CHECK_INTERVAL,
) -> FastAPI:
    """The app; with `etl` (the CLI passes `cryptoetl.etl.service.open_etl`) it also runs the
    scheduler and answers the admin trigger. `replica_check_seconds`: how often the read
    replica (`DATABASE_READ_URL`) is checked."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            url = database_url
            if url is None:
                url = await stack.enter_async_context(prepare_database(settings))
            app.state.pool = pool = await stack.enter_async_context(open_pool(url))
            read_url = settings.database_read_url
            app.state.reads = reads = await stack.enter_async_context(
                open_reads(
                    pool,
                    read_url.get_secret_value() if read_url is not None else None,
                    max_lag=settings.read_replica_max_lag_seconds,
                    interval=replica_check_seconds,
                )
            )
            app.state.metrics.watch_replica(reads.figures if reads.monitor else None)
            app.state.accepts_connections = AcceptsConnections(url)
            try:
                await reap_dead_runs(pool)
            except DATABASE_ERRORS as exc:  # best effort: health reports the database
                log.warning("dead_runs_not_reaped", error=describe(exc))
            app.state.versions = await stack.enter_async_context(watch_versions(url))
            app.state.started_at = datetime.now(UTC)
            if etl is not None:
                control = await stack.enter_async_context(etl(settings, pool, app.state.metrics))
                app.state.etl = control
                app.state.metrics.scheduler_leader.set_function(lambda: float(control.is_leader))
            yield

    app = FastAPI(
        title="cryptoetl",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JsonResponse,
        docs_url=None,
        redoc_url=None,
        # every endpoint: a query parameter it does not know, or one repeated, is a 422
        dependencies=[Depends(check_query)],
        generate_unique_id_function=operation_id,
    )
    app.state.query_rules = {}
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.caches = DataCaches(settings.api_cache_mb * 1024 * 1024)
    app.state.export_slots = asyncio.Semaphore(EXPORT_SLOTS)
    app.state.started_at = datetime.now(UTC)
    app.state.etl = None
    app.state.pages = Pages()
    app.state.accepts_connections = None
    install_error_handlers(app)
    install_docs(app)
    install_openapi(app)
    for module in (
        data,
        lineage,
        assets,
        health,
        stats,
        runs,
        rejected,
        metrics,
        admin,
        asset_admin,
    ):
        app.include_router(module.router)
    for page in (dashboard, asset_page, rejected_page):
        app.include_router(page.router)
    admin_routes = [*admin.router.routes, *asset_admin.router.routes]
    app.add_middleware(BodyLimitMiddleware, settings=settings, routes=admin_routes)
    app.add_middleware(RequestIdMiddleware, metrics=app.state.metrics)
    return app
