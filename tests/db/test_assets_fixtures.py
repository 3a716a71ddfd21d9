"""Assets from the real fixtures: CoinGecko's page, CoinPaprika's tickers and the twelve CSV
files, loaded once through the real pipeline (which maps the coins), then cloned per test."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from cryptoetl.assets.sync import sync_assets
from cryptoetl.db.pool import Pool, with_database
from cryptoetl.models.times import utc_text
from tests.conftest import create_test_database, drop_test_database
from tests.support.assets_data import copy_csv_fixtures, load_fixtures


@pytest.fixture(scope="module")
def loaded_template(
    pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database holding the three sources' fixtures, loaded once for this module."""
    name = asyncio.run(create_test_database(pg_server_url, template_db))
    work = tmp_path_factory.mktemp("assets")
    csv_dir = copy_csv_fixtures(work / "csv")
    asyncio.run(load_fixtures(with_database(pg_server_url, name), csv_dir, work / "data"))
    try:
        yield name
    finally:
        asyncio.run(drop_test_database(pg_server_url, name))


@pytest.fixture
async def db_url(pg_server_url: str, loaded_template: str) -> AsyncIterator[str]:
    """This test's own copy of the loaded database."""
    name = await create_test_database(pg_server_url, loaded_template)
    try:
        yield with_database(pg_server_url, name)
    finally:
        await drop_test_database(pg_server_url, name)


async def latest(pool: Pool, source: str, coin_id: str) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT price_usd, market_cap, volume_24h, observed_at FROM unified_crypto_data"
        " WHERE source = $1 AND coin_id = $2 ORDER BY observed_at DESC LIMIT 1",
        source,
        coin_id,
    )
    assert row is not None, (source, coin_id)
    return dict(row)


async def asset_of(pool: Pool, source: str, coin_id: str) -> str | None:
    value: str | None = await pool.fetchval(
        "SELECT asset_id FROM asset_mappings WHERE source = $1 AND coin_id = $2", source, coin_id
    )
    return value


@pytest.mark.parametrize(
    ("symbol", "asset_id", "coins"),
    [
        (
            "btc",
            "bitcoin",
            {"coingecko": "bitcoin", "coinpaprika": "btc-bitcoin", "csv": "bitcoin"},
        ),
        (
            "eth",
            "ethereum",
            {"coingecko": "ethereum", "coinpaprika": "eth-ethereum", "csv": "ethereum"},
        ),
        ("usdt", "tether", {"coingecko": "tether", "coinpaprika": "usdt-tether", "csv": "tether"}),
    ],
)
async def test_one_asset_with_three_sources_side_by_side_and_a_spread(
    client: httpx.AsyncClient, pool: Pool, symbol: str, asset_id: str, coins: dict[str, str]
) -> None:
    """BTC, ETH, USDT: one asset each, the newest row of each source side by side, a spread."""
    response = await client.get("/api/v1/assets", params={"symbol": symbol})
    assert response.status_code == 200, response.text
    body = response.json()
    matching = [a for a in body["assets"] if a["asset_id"] == asset_id]
    assert len(matching) == 1
    asset = matching[0]
    assert asset["symbol"].lower() == symbol
    assert asset["derivative"] is False
    assert [q["source"] for q in asset["sources"]] == ["coingecko", "coinpaprika", "csv"]
    for quote in asset["sources"]:
        if quote["source"] != "csv":  # csv also has the shipped `btc` pin for BTC, see below
            assert quote["coin_id"] == coins[quote["source"]]
        row = await latest(pool, quote["source"], quote["coin_id"])
        assert quote["price_usd"] == row["price_usd"]
        assert quote["market_cap"] == row["market_cap"]
        assert quote["observed_at"] == utc_text(row["observed_at"])
        assert quote["age_seconds"] > 86400  # the fixtures' observations are old...
        assert quote["stale"] is False  # ...but just loaded: fresh by the health rule
    prices = [q["price_usd"] for q in asset["sources"]]
    # the fixtures were observed months apart: only prices within the window of the newest
    # are compared (here the newest alone), the others are listed as older
    newest = max(q["observed_at"] for q in asset["sources"])
    near = [q["price_usd"] for q in asset["sources"] if q["compared"]]
    assert [q["observed_at"] for q in asset["sources"] if q["compared"]] == [newest]
    assert asset["spread"]["compared"] == len(near) == 1
    assert asset["spread"]["older"] == 2
    assert asset["spread"]["median_price"] == statistics.median(near)
    assert asset["spread"]["percent"] is None
    mapped = {(c["source"], c["coin_id"]) for c in asset["coins"]}
    assert set(coins.items()) <= mapped
    detail = (await client.get(f"/api/v1/assets/{asset_id}")).json()
    assert [q["price_usd"] for q in detail["sources"]] == prices
    assert detail["spread"] == asset["spread"]


async def test_symbol_btc_finds_only_bitcoin(client: httpx.AsyncClient) -> None:
    """The BTC search is one asset: wrapped and bridged BTC tokens carry other symbols."""
    body = (await client.get("/api/v1/assets", params={"symbol": "BTC"})).json()
    assert body["total"] == 1
    assert [a["asset_id"] for a in body["assets"]] == ["bitcoin"]


async def test_distinct_usdt_and_weth_coins_stay_distinct(client: httpx.AsyncClient) -> None:
    """Several coins share the symbols usdt and weth; each stays its own asset."""
    usdt = (await client.get("/api/v1/assets", params={"symbol": "usdt"})).json()
    assert {a["asset_id"] for a in usdt["assets"]} == {"tether", "mantle-bridged-usdt-mantle"}
    weth = (await client.get("/api/v1/assets", params={"symbol": "weth", "page_size": 50})).json()
    by_id = {a["asset_id"]: a for a in weth["assets"]}
    assert set(by_id) == {
        "weth",
        "binance-peg-weth",
        "arbitrum-bridged-weth-arbitrum-one",
        "l2-standard-bridged-weth-base",
        "l2-standard-bridged-weth-blast",
        "polygon-pos-bridged-weth-polygon-pos",
    }
    coins = {(c["source"], c["coin_id"]) for c in by_id["weth"]["coins"]}
    assert coins == {("coingecko", "weth"), ("coinpaprika", "weth-weth"), ("csv", "weth")}
    for asset_id, asset in by_id.items():
        if asset_id != "weth":
            assert asset["derivative"] is True
            assert ("coingecko", "weth") not in {
                (c["source"], c["coin_id"]) for c in asset["coins"]
            }


@pytest.mark.parametrize(
    ("source", "token", "mirrored"),
    [
        ("coingecko", "wrapped-bitcoin", "bitcoin"),
        ("coinpaprika", "wbtc-wrapped-bitcoin", "bitcoin"),
        ("coingecko", "arbitrum-bridged-wbtc-arbitrum-one", "wrapped-bitcoin"),
        ("coingecko", "coinbase-wrapped-btc", "bitcoin"),
        ("coingecko", "mantle-bridged-usdt-mantle", "tether"),
        ("coingecko", "binance-peg-dogecoin", "dogecoin"),
        ("coingecko", "binance-peg-weth", "weth"),
        ("coingecko", "l2-standard-bridged-weth-base", "weth"),
        ("coingecko", "wbnb", "binancecoin"),
        ("coingecko", "staked-ether", "ethereum"),
        ("csv", "wrapped-bitcoin", "bitcoin"),
    ],
)
async def test_bridged_and_wrapped_tokens_are_not_merged(
    pool: Pool, source: str, token: str, mirrored: str
) -> None:
    """A wrapped, bridged, pegged or staked token is never the asset it mirrors."""
    token_asset = await asset_of(pool, source, token)
    mirrored_asset = await asset_of(pool, "coingecko", mirrored)
    assert token_asset is not None
    assert mirrored_asset is not None
    assert token_asset != mirrored_asset
    members = await pool.fetch(
        "SELECT source, coin_id FROM asset_mappings WHERE asset_id = $1", token_asset
    )
    assert ("coingecko", mirrored) not in {(m["source"], m["coin_id"]) for m in members}


async def test_the_shipped_overrides_pin_their_coins(client: httpx.AsyncClient) -> None:
    """The Coinbase BTCUSD file (symbol only) is Bitcoin by the shipped pin, not by matching."""
    body = (await client.get("/api/v1/asset-mappings", params={"asset_id": "bitcoin"})).json()
    by_coin = {(m["source"], m["coin_id"]): m for m in body["mappings"]}
    pinned = by_coin[("csv", "btc")]
    assert (pinned["rule"], pinned["method"], pinned["confidence"]) == ("pinned", "file", 1.0)
    assert pinned["symbol"] == "BTC"
    assert pinned["name"] is None
    matched = by_coin[("coinpaprika", "btc-bitcoin")]
    assert (matched["rule"], matched["method"]) == ("name_and_symbol", "auto")
    assert "coingecko:bitcoin" in matched["evidence"]["with"]


async def test_rebuild_changes_nothing_on_a_mapped_database(pool: Pool) -> None:
    """Deciding every coin again from its newest data gives the same decisions."""
    before = await pool.fetch("SELECT * FROM asset_mappings ORDER BY source, coin_id")
    assets_before = await pool.fetchval("SELECT count(*) FROM assets")
    report = await sync_assets(pool, refresh=True, force=True)
    assert report.decided
    assert (report.new_coins, report.changed, report.assets_created) == (0, 0, 0)
    assert report.mapped + report.unmapped == len(before)
    after = await pool.fetch("SELECT * FROM asset_mappings ORDER BY source, coin_id")
    assert [dict(r) for r in after] == [dict(r) for r in before]
    assert await pool.fetchval("SELECT count(*) FROM assets") == assets_before
    # and with nothing new, the pipeline's step decides nothing at all
    assert not (await sync_assets(pool, sources=["coingecko"])).decided


async def test_every_loaded_coin_has_a_decision(pool: Pool) -> None:
    """No (source, coin_id) in the data is left without a mapping row."""
    missing = await pool.fetchval(
        "SELECT count(*) FROM (SELECT DISTINCT source, coin_id FROM unified_crypto_data) AS p"
        " WHERE NOT EXISTS (SELECT 1 FROM asset_mappings AS m"
        "  WHERE m.source = p.source AND m.coin_id = p.coin_id)"
    )
    assert missing == 0
    assert await pool.fetchval("SELECT count(*) FROM asset_mappings") > 1000
