"""The admin guard: 403 when no token is configured, 401 without the right bearer token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest

from cryptoetl.api.auth import AdminDep
from cryptoetl.config import Settings

ClientFactory = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def _guarded(_: AdminDep) -> dict[str, bool]:
    return {"ok": True}


async def _client_with_guarded_route(
    make_client: ClientFactory, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(settings) as client:
        client.app.add_api_route("/admin/probe", _guarded, methods=["POST"])  # type: ignore[attr-defined]
        yield client


@pytest.fixture
async def guarded(
    make_client: ClientFactory, make_settings: Callable[..., Settings]
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client_with_guarded_route(
        make_client, make_settings(admin_token="s3cret-admin-token")
    ):
        yield client


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token", "Basic s3cret-admin-token", "Bearer", "s3cret-admin-token"],
)
async def test_a_missing_or_wrong_token_is_401(
    guarded: httpx.AsyncClient, header: str | None
) -> None:
    """Anything but `Bearer <ADMIN_TOKEN>` is refused with 401 JSON and WWW-Authenticate."""
    headers = {"X-Request-ID": "auth-1"} | ({"Authorization": header} if header else {})
    response = await guarded.post("/admin/probe", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["error"] == "unauthorized"
    assert body["request_id"] == "auth-1"
    assert "s3cret-admin-token" not in response.text


async def test_the_right_token_passes(guarded: httpx.AsyncClient) -> None:
    """The configured token, in any case of the scheme, is let through."""
    for scheme in ("Bearer", "bearer"):
        response = await guarded.post(
            "/admin/probe", headers={"Authorization": f"{scheme} s3cret-admin-token"}
        )
        assert response.status_code == 200
        assert response.json() == {"ok": True}


async def test_no_configured_token_disables_admin_with_403(
    make_client: ClientFactory, make_settings: Callable[..., Settings]
) -> None:
    """Without ADMIN_TOKEN every admin call is 403 with a message saying how to enable it."""
    async for client in _client_with_guarded_route(make_client, make_settings()):
        response = await client.post("/admin/probe", headers={"Authorization": "Bearer x"})
        assert response.status_code == 403
        assert "set ADMIN_TOKEN" in response.json()["detail"]
