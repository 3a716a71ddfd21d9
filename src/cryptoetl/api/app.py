"""`create_app(settings)`: the FastAPI app and the lifespan that owns its resources.

Resources are entered on one `AsyncExitStack` and put on `app.state`; nothing lives in a
module global. With `database_url` given (the CLI prepares the database before serving) the
lifespan only opens the pool; without it, the lifespan prepares the database itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from cryptoetl import __version__
from cryptoetl.api.errors import install_error_handlers
from cryptoetl.api.middleware import RequestIdMiddleware
from cryptoetl.api.responses import JsonResponse
from cryptoetl.api.routes import health
from cryptoetl.config import Settings
from cryptoetl.db.pool import open_pool, prepare_database

DESCRIPTION = """
A PostgreSQL history of cryptocurrency prices, market caps and volumes from CoinPaprika,
CoinGecko and CSV files. Every response carries `X-Request-ID`; errors are JSON with the
request id.
"""


def create_app(settings: Settings, *, database_url: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            url = database_url
            if url is None:
                url = await stack.enter_async_context(prepare_database(settings))
            app.state.pool = await stack.enter_async_context(open_pool(url))
            yield

    app = FastAPI(
        title="cryptoetl",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JsonResponse,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health.router)
    app.add_middleware(RequestIdMiddleware)
    return app
