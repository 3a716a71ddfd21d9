"""`create_app(settings)`: the FastAPI app and the lifespan that owns its resources.

Resources are entered on one `AsyncExitStack` and put on `app.state`; nothing lives in a
module global. With `database_url` given (the CLI prepares the database before serving) the
lifespan only opens the pool; without it, the lifespan prepares the database itself.

`app.state` holds: `settings`, `pool`, `versions` (the data versions, kept current by
LISTEN/NOTIFY; see `db/versions.py`), `metrics` (a `cryptoetl.metrics.Metrics`, which is also
the `SourceEvents` to hand the pipeline), `caches` and `export_slots` (the data route's), and
`started_at` (when this instance started; the health check's grace period for sources that
never ran).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from cryptoetl import __version__
from cryptoetl.api.cache import DataCaches
from cryptoetl.api.errors import install_error_handlers
from cryptoetl.api.middleware import RequestIdMiddleware
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.routes import asset_admin, assets, data, health, metrics, runs, stats
from cryptoetl.api.streaming import EXPORT_SLOTS
from cryptoetl.config import Settings
from cryptoetl.db.pool import open_pool, prepare_database
from cryptoetl.db.versions import watch_versions
from cryptoetl.metrics import Metrics

DESCRIPTION = """
A PostgreSQL history of cryptocurrency prices, market caps and volumes from CoinPaprika,
CoinGecko and CSV files. Every response carries `X-Request-ID`; errors are JSON with the
request id; a database outage answers 503 with `Retry-After`.

Data: `GET /api/v1/data`. One asset across sources: `GET /api/v1/assets`, `/api/v1/assets/{id}`,
`/api/v1/assets/{id}/history`, `/api/v1/asset-mappings`. ETL state: `/api/v1/health`,
`/api/v1/stats`, `/api/v1/runs`.
Prometheus metrics: `GET /metrics`.
"""


def create_app(settings: Settings, *, database_url: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            url = database_url
            if url is None:
                url = await stack.enter_async_context(prepare_database(settings))
            app.state.pool = await stack.enter_async_context(open_pool(url))
            app.state.versions = await stack.enter_async_context(watch_versions(url))
            app.state.started_at = datetime.now(UTC)
            yield

    app = FastAPI(
        title="cryptoetl",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JsonResponse,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.caches = DataCaches(settings.api_cache_mb * 1024 * 1024)
    app.state.export_slots = asyncio.Semaphore(EXPORT_SLOTS)
    app.state.started_at = datetime.now(UTC)
    install_error_handlers(app)
    for module in (data, assets, health, stats, runs, metrics, asset_admin):
        app.include_router(module.router)
    app.add_middleware(RequestIdMiddleware, metrics=app.state.metrics)
    return app
