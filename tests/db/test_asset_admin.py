"""The admin API for assets: pin, correct, unpin, rebuild; guarded by ADMIN_TOKEN."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from cryptoetl.assets.sync import sync_assets
from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from tests.support.assets_data import load_series, observe

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PINS = "/admin/asset-pins"
PAPRIKA = "/admin/asset-pins/coinpaprika/tst-testcoin"
PAPRIKA_COIN = {"source": "coinpaprika", "coin_id": "tst-testcoin"}


@pytest.fixture
async def admin(
    make_client: Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]],
    make_settings: Callable[..., Settings],
    pool: Pool,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with an admin token, over the hand-written series mapped to one asset."""
    await load_series(pool)
    await sync_assets(pool)
    async with make_client(make_settings(admin_token=TOKEN)) as client:
        yield client


async def coins_of(client: httpx.AsyncClient, asset_id: str) -> set[tuple[str, str]]:
    body = (await client.get(f"/api/v1/assets/{asset_id}")).json()
    return {(c["source"], c["coin_id"]) for c in body["coins"]}


async def test_an_admin_call_corrects_a_mapping_and_unpinning_restores_it(
    admin: httpx.AsyncClient,
) -> None:
    """Move CoinPaprika's coin to a new asset; then remove the pin and it matches again."""
    assert await coins_of(admin, "testcoin") == {
        ("coingecko", "testcoin"),
        ("coinpaprika", "tst-testcoin"),
    }
    response = await admin.post(
        PINS,
        json={
            **PAPRIKA_COIN,
            "asset_id": "testcoin-paprika",
            "symbol": "TST",
            "name": "Testcoin (Paprika)",
        },
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["pinned_asset_id"], body["asset_created"]) == ("testcoin-paprika", True)
    mapping = body["mapping"]
    assert (mapping["asset_id"], mapping["rule"], mapping["method"]) == (
        "testcoin-paprika",
        "pinned",
        "admin",
    )
    assert await coins_of(admin, "testcoin") == {("coingecko", "testcoin")}
    assert await coins_of(admin, "testcoin-paprika") == {("coinpaprika", "tst-testcoin")}
    moved = (await admin.get("/api/v1/assets/testcoin-paprika")).json()
    assert [q["source"] for q in moved["sources"]] == ["coinpaprika"]
    assert moved["spread"]["percent"] is None
    history = (await admin.get("/api/v1/assets/testcoin/history", params={"interval": "1d"})).json()
    assert [b["sources"] for b in history["buckets"]] == [["coingecko"], ["coingecko"]]

    response = await admin.delete(PAPRIKA, headers=AUTH)
    assert response.status_code == 200
    restored = response.json()["mapping"]
    assert (restored["asset_id"], restored["method"]) == ("testcoin", "auto")
    assert await coins_of(admin, "testcoin") == {
        ("coingecko", "testcoin"),
        ("coinpaprika", "tst-testcoin"),
    }
    again = await admin.delete(PAPRIKA, headers=AUTH)
    assert again.status_code == 404
    assert "no admin pin" in again.json()["detail"]


async def test_pinning_to_none_keeps_a_coin_out(admin: httpx.AsyncClient) -> None:
    """`asset_id: null` unmaps the coin, whatever matching would say."""
    response = await admin.post(
        PINS, json={**PAPRIKA_COIN, "asset_id": None, "note": "bad feed"}, headers=AUTH
    )
    assert response.status_code == 200
    mapping = response.json()["mapping"]
    assert (mapping["asset_id"], mapping["rule"]) == (None, "pinned_unmapped")
    assert mapping["reason"] == "kept unmapped by admin pin: bad feed"
    assert await coins_of(admin, "testcoin") == {("coingecko", "testcoin")}


async def test_an_admin_pin_beats_the_shipped_file_and_waits_for_unseen_coins(
    admin: httpx.AsyncClient, pool: Pool
) -> None:
    """The shipped file pins csv:btc to bitcoin; an admin pin overrides it, before the coin is
    even loaded, and applies when it is."""
    response = await admin.post(
        PINS, json={"source": "csv", "coin_id": "btc", "asset_id": "testcoin"}, headers=AUTH
    )
    assert response.status_code == 200
    assert response.json()["mapping"] is None  # no csv:btc data yet
    await observe(pool, "csv", "btc", None, "BTC")
    await sync_assets(pool, sources=["csv"])
    assert ("csv", "btc") in await coins_of(admin, "testcoin")
    response = await admin.delete(f"{PINS}/csv/btc", headers=AUTH)
    mapping = response.json()["mapping"]
    assert (mapping["asset_id"], mapping["method"]) == ("bitcoin", "file")


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"source": "kraken", "coin_id": "x", "asset_id": "testcoin"}, "source"),
        ({**PAPRIKA_COIN, "asset_id": "no-such-asset"}, "asset_id"),
        ({**PAPRIKA_COIN, "asset_id": "Bad Id", "symbol": "X", "name": "X"}, "asset_id"),
        ({**PAPRIKA_COIN, "asset": "testcoin"}, "asset"),
        ({"coin_id": "x", "asset_id": None}, "source"),
    ],
)
async def test_bad_pins_are_refused_and_change_nothing(
    admin: httpx.AsyncClient, pool: Pool, payload: dict[str, Any], where: str
) -> None:
    """422 naming what is wrong; no pin, no asset written."""
    response = await admin.post(PINS, json=payload, headers=AUTH)
    assert response.status_code == 422
    assert where in [entry["loc"][-1] for entry in response.json()["detail"]]
    assert await pool.fetchval("SELECT count(*) FROM asset_pins WHERE origin = 'admin'") == 0
    assert await pool.fetchval("SELECT count(*) FROM assets WHERE origin = 'admin'") == 0


async def test_rebuild_reports_what_it_decided(admin: httpx.AsyncClient) -> None:
    """POST /admin/assets/rebuild decides every coin again and changes nothing that is right."""
    response = await admin.post("/admin/assets/rebuild", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert (body["mapped"], body["unmapped"], body["changed"], body["new_coins"]) == (2, 0, 0, 0)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", PINS),
        ("DELETE", PAPRIKA),
        ("POST", "/admin/assets/rebuild"),
    ],
)
async def test_the_admin_routes_are_guarded(
    make_client: Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]],
    make_settings: Callable[..., Settings],
    method: str,
    path: str,
) -> None:
    """403 without ADMIN_TOKEN configured; 401 with a wrong token."""
    body = {**PAPRIKA_COIN, "asset_id": None} if path == PINS else None
    async with make_client(make_settings()) as client:
        response = await client.request(method, path, json=body)
        assert response.status_code == 403
    async with make_client(make_settings(admin_token=TOKEN)) as client:
        wrong = {"Authorization": "Bearer wrong"}
        response = await client.request(method, path, headers=wrong, json=body)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
