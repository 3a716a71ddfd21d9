"""Every error answers JSON with the request id; no traceback ever reaches a client.

Shape: `{"error": "<kind>", "detail": <message or list>, "request_id": "<id>"}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cryptoetl.api.responses import JsonResponse
from cryptoetl.db.pool import DATABASE_UNAVAILABLE
from cryptoetl.errors import describe

log = structlog.get_logger(__name__)

DATABASE_RETRY_AFTER = "5"
_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_parameters",
    429: "too_many_requests",
    503: "service_unavailable",
}


def unavailable(exc: BaseException) -> dict[str, str]:
    """Log that the database is unavailable (one of `DATABASE_UNAVAILABLE`); the headers of the
    503 that says so. The API's JSON and the pages' HTML answer through this one rule."""
    log.warning("database_unavailable", error=describe(exc))
    return {"Retry-After": DATABASE_RETRY_AFTER}


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def error_response(
    request: Request,
    status: int,
    detail: Any,
    *,
    kind: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JsonResponse:
    """The error body; `extra` adds fields of its own (the 409's running runs)."""
    body = {
        "error": kind or _KINDS.get(status, "error"),
        "detail": detail,
        **(extra or {}),
        "request_id": request_id_of(request),
    }
    return JsonResponse(body, status_code=status, headers=dict(headers) if headers else None)


def _clean_validation(errors: Any) -> list[dict[str, Any]]:
    cleaned = []
    for error in errors:
        cleaned.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return cleaned


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JsonResponse:
        return error_response(request, exc.status_code, exc.detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JsonResponse:
        errors = _clean_validation(exc.errors())
        if any(error["type"] == "json_invalid" for error in errors):  # not JSON at all
            return error_response(request, 400, errors)
        return error_response(request, 422, errors)

    async def database_down(request: Request, exc: Exception) -> JsonResponse:
        return error_response(
            request, 503, "the database is unavailable; retry shortly", headers=unavailable(exc)
        )

    # Registered per class so Starlette's ExceptionMiddleware answers them without re-raising.
    for exc_class in DATABASE_UNAVAILABLE:
        app.add_exception_handler(exc_class, database_down)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JsonResponse:
        log.error("unhandled_error", exc_info=exc)
        return error_response(request, 500, "internal error; see the server log", kind="internal")
