"""`PageRoute`: page routes answer every error with an HTML page instead of the API's JSON.

A database that does not answer is a 503 page with `Retry-After` (the page reloads itself
when the database is back); a bad parameter is a 422 page naming it; an unknown asset a 404
page; anything unexpected a 500 page pointing at the server log. The request id is on every
one of them, as on every response.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from cryptoetl.api.errors import unavailable
from cryptoetl.db.pool import DATABASE_UNAVAILABLE
from cryptoetl.web.render import Pages

log = structlog.get_logger(__name__)

# How long a page waits for a pooled connection before it says the database is unavailable.
DATABASE_WAIT = 5.0


def _problems(exc: RequestValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        where = [str(part) for part in error.get("loc", ()) if part not in ("query", "path")]
        lines.append(f"{'.'.join(where) or 'request'}: {error.get('msg', 'invalid')}")
    return lines


class PageRoute(APIRoute):
    """An APIRoute whose errors are rendered by `app.state.pages`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            pages: Pages = request.app.state.pages
            try:
                return await handler(request)
            except HTTPException as exc:
                return pages.error(request, exc.status_code, str(exc.detail), headers=exc.headers)
            except RequestValidationError as exc:
                return pages.error(
                    request, 422, "The address has invalid parameters.", details=_problems(exc)
                )
            except DATABASE_UNAVAILABLE as exc:
                return pages.error(
                    request,
                    503,
                    "cryptoetl cannot reach its PostgreSQL database right now, so there is "
                    "nothing to show. Nothing is lost: the data stays in the database, and "
                    "this page comes back by itself once the database answers again.",
                    headers=unavailable(exc),
                )
            except Exception as exc:
                log.error("unhandled_error", exc_info=exc)
                return pages.error(request, 500, "An internal error; see the server log.")

        return page_handler
