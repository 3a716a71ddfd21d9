"""The admin endpoints' guard: `Authorization: Bearer $ADMIN_TOKEN`, compared in constant time.

No token configured: every admin endpoint answers 403 saying how to enable it. A missing or
wrong token: 401 with `WWW-Authenticate: Bearer`. The token never appears in a response or log.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from cryptoetl.config import Settings

DISABLED = "the admin API is disabled: set ADMIN_TOKEN on the server to enable it"
UNAUTHORIZED = "a valid 'Authorization: Bearer <ADMIN_TOKEN>' header is required"


def refusal(settings: Settings, authorization: str) -> HTTPException | None:
    """Why a request with this `Authorization` header may not use the admin API, or None.
    Also asked by `BodyLimitMiddleware` before any of the request's body is read."""
    if settings.admin_token is None:
        return HTTPException(status_code=403, detail=DISABLED)
    scheme, _, presented = authorization.partition(" ")
    expected = settings.admin_token.get_secret_value().encode()
    valid = scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected)
    if not valid:
        return HTTPException(
            status_code=401, detail=UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"}
        )
    return None


async def require_admin(request: Request) -> None:
    refused = refusal(request.app.state.settings, request.headers.get("authorization", ""))
    if refused is not None:
        raise refused


AdminDep = Annotated[None, Depends(require_admin)]
"""Add as a parameter (`_: AdminDep`) to an admin route."""
