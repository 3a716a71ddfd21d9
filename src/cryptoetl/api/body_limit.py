"""Request bodies are bounded, and an admin request is refused before its body is read.

A plain ASGI middleware inside `RequestIdMiddleware` (so its answers carry the request id):

- a path under `/admin/` without a valid token answers 401/403 (`cryptoetl.api.auth`) before
  one byte of its body is read, so an unauthenticated client cannot make the service buffer
  or parse anything;
- a `Content-Length` over API_MAX_BODY_KB answers 413 at once; a body sent without a length
  (chunked) is counted while it is read and answers 413 as soon as it passes the limit.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cryptoetl.api.auth import refusal
from cryptoetl.api.errors import error_response
from cryptoetl.config import Settings

ADMIN_PREFIX = "/admin/"


def too_large(limit: int) -> HTTPException:
    return HTTPException(
        status_code=413, detail=f"the request body is larger than {limit:,} bytes (API_MAX_BODY_KB)"
    )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limit = settings.api_max_body_kb * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused: HTTPException | None = None
        length: str | None = None
        authorization = ""
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                length = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        if str(scope.get("path", "")).startswith(ADMIN_PREFIX):
            refused = refusal(self.settings, authorization)
        # a malformed length is uvicorn's to refuse
        oversized = length is not None and length.isdigit() and int(length) > self.limit
        if refused is None and oversized:
            refused = too_large(self.limit)
        if refused is not None:
            await self._answer(scope, receive, send, refused)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # FastAPI re-raises an HTTPException met while reading a body
                    raise too_large(self.limit)
            return message

        return counted

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, refused: HTTPException
    ) -> None:
        headers: dict[str, Any] = dict(refused.headers or {})
        headers["Connection"] = "close"  # a body left unread is not worth draining
        response = error_response(
            Request(scope), refused.status_code, refused.detail, headers=headers
        )
        await response(scope, receive, send)
