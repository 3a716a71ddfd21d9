"""Request ids, access logging and request metrics, as a plain ASGI middleware (cheap on the
hot path).

Every response carries `X-Request-ID`: the client's own when it sent a sane one, a new UUID
otherwise. The id is bound to every log line written while the request is handled. The start
time is left in `request.state.started` (for `api_latency_ms`), and each request is counted
by its route template (`/api/v1/runs/{run_id}`, not the concrete path; `unmatched` for paths
no route knows) and status.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cryptoetl.log import access_writer
from cryptoetl.metrics import Metrics

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SANE_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")

access_log = structlog.get_logger("cryptoetl.access")


def latency_ms(request: Request) -> float:
    """Milliseconds since this middleware saw the request (the `api_latency_ms` field)."""
    started = getattr(request.state, "started", None)
    if started is None:
        return 0.0
    return round((time.perf_counter() - float(started)) * 1000, 2)


def new_request_id() -> str:
    return str(uuid.uuid4())


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics
        # A concrete logger, bound once (the stack is built after logging is configured):
        # the module-level proxy would build one per request. JSON lines take a direct path.
        self.access_log = access_log.bind()
        self.write_access = access_writer()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                candidate = value.decode("latin-1").strip()
                if _SANE_ID.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or new_request_id()
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started"] = started
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope.get("method", "")
            if self.metrics is not None:
                # unknown methods are one label: clients choose them, and labels are forever
                known = method if method in _METHODS else "OTHER"
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                self.metrics.observe_request(known, route, status, elapsed)
            duration_ms = round(elapsed * 1000, 2)
            if self.write_access is not None:
                self.write_access(request_id, method, scope.get("path", ""), status, duration_ms)
            else:
                self.access_log.info(
                    "request",
                    method=method,
                    path=scope.get("path"),
                    status=status,
                    duration_ms=duration_ms,
                )
            structlog.contextvars.reset_contextvars(**tokens)
