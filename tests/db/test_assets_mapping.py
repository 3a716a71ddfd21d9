"""Keeping the mapping in the database: what is new, what stays unmapped and why, overrides,
idempotence, and the pipeline's step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import structlog

from cryptoetl.assets.overrides import parse_overrides
from cryptoetl.assets.sync import sync_assets
from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunStatus, RunTrigger
from tests.support import REPO
from tests.support.assets_data import observe
from tests.support.upstream import Upstream

NO_OVERRIDES = parse_overrides("{}", "none")
SAMPLE = REPO / "data" / "sample.csv"


async def mapping(pool: Pool, source: str, coin_id: str) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT asset_id, name, symbol, rule, method, reason, evidence, decided_at"
        " FROM asset_mappings WHERE source = $1 AND coin_id = $2",
        source,
        coin_id,
    )
    assert row is not None, (source, coin_id)
    return dict(row)


async def test_undecidable_coins_stay_unmapped_and_are_listed(
    pool: Pool, client: httpx.AsyncClient
) -> None:
    """Ambiguous, symbol-only and name-only coins are unmapped with their reason, and listed."""
    await observe(pool, "coingecko", "tether", "Tether", "usdt")
    await observe(pool, "coingecko", "tether-2", "Tether", "usdt")
    await observe(pool, "coinpaprika", "usdt-tether", "Tether", "USDT")
    await observe(pool, "csv", "xyz", None, "XYZ")
    await observe(pool, "csv", "foo", "Foo", None)
    await observe(pool, "coingecko", "bitcoin", "Bitcoin", "btc")
    report = await sync_assets(pool, overrides=NO_OVERRIDES)
    assert (report.mapped, report.unmapped) == (1, 5)
    assert report.unmapped_by_rule == {"ambiguous": 3, "no_symbol": 1, "symbol_only": 1}
    assert await pool.fetchval("SELECT count(*) FROM assets") == 1  # bitcoin only
    response = await client.get("/api/v1/asset-mappings", params={"status": "unmapped"})
    body = response.json()
    assert body["total"] == 5
    listed = {(m["source"], m["coin_id"]): m for m in body["mappings"]}
    ambiguous = listed[("coinpaprika", "usdt-tether")]
    assert ambiguous["rule"] == "ambiguous"
    assert ambiguous["evidence"]["candidates"] == ["coingecko:tether", "coingecko:tether-2"]
    assert listed[("csv", "xyz")]["rule"] == "symbol_only"
    assert listed[("csv", "foo")]["rule"] == "no_symbol"
    usdt = (await client.get("/api/v1/assets", params={"symbol": "usdt"})).json()
    assert usdt["total"] == 0


async def test_a_coins_name_and_symbol_come_from_its_newest_row_that_has_both(pool: Pool) -> None:
    """A newer row without a symbol (a names-only file) does not hide the symbol."""
    await observe(pool, "csv", "ardor", "Ardor", "ARDR", "2017-12-06 00:00:00")
    await observe(pool, "csv", "ardor", "Ardor", None, "2018-01-01 00:00:00")
    await observe(pool, "csv", "onlyname", "Onlyname", None, "2018-01-01 00:00:00")
    await observe(pool, "csv", "onlyname", None, None, "2018-01-02 00:00:00")
    await sync_assets(pool, overrides=NO_OVERRIDES)
    ardor = await mapping(pool, "csv", "ardor")
    assert (ardor["asset_id"], ardor["name"], ardor["symbol"]) == ("ardor", "Ardor", "ARDR")
    only = await mapping(pool, "csv", "onlyname")
    assert (only["asset_id"], only["name"], only["rule"]) == (None, "Onlyname", "no_symbol")


async def test_new_coins_are_decided_and_old_decisions_stay(pool: Pool) -> None:
    """A later run's new coin is decided, earlier decisions keep their time; nothing new: no-op."""
    await observe(pool, "coingecko", "bitcoin", "Bitcoin", "btc")
    await sync_assets(pool, sources=["coingecko"], overrides=NO_OVERRIDES)
    first = await mapping(pool, "coingecko", "bitcoin")
    await observe(pool, "coingecko", "bitcoin", "Bitcoin", "btc", "2025-03-01 11:00:00")
    assert not (await sync_assets(pool, sources=["coingecko"], overrides=NO_OVERRIDES)).decided
    await observe(pool, "coinpaprika", "btc-bitcoin", "Bitcoin", "BTC")
    await observe(pool, "coinpaprika", "eth-ethereum", "Ethereum", "ETH")
    report = await sync_assets(pool, sources=["coinpaprika"], overrides=NO_OVERRIDES)
    assert (report.new_coins, report.assets_created) == (2, 1)
    # the new coin joins the asset; the old coin's evidence now names it too
    assert report.changed == 3
    paprika = await mapping(pool, "coinpaprika", "btc-bitcoin")
    assert paprika["asset_id"] == "bitcoin"
    assert paprika["evidence"]["with"] == ["asset:bitcoin", "coingecko:bitcoin"]
    again = await mapping(pool, "coingecko", "bitcoin")
    assert again["decided_at"] == first["decided_at"]
    assert again["evidence"]["with"] == ["asset:bitcoin", "coinpaprika:btc-bitcoin"]
    assert not (await sync_assets(pool, overrides=NO_OVERRIDES)).decided


async def test_an_overrides_file_pins_and_letting_go_returns_to_matching(pool: Pool) -> None:
    """A file pin joins a coin matching cannot place; when the file drops it, matching decides
    again (CoinPaprika's TONCOIN is not CoinGecko's ton by symbol)."""
    gecko, paprika = ("coingecko", "the-open-network"), ("coinpaprika", "toncoin-the-open-network")
    await observe(pool, *gecko, "Toncoin", "ton")
    await observe(pool, *paprika, "The Open Network", "TONCOIN")
    await sync_assets(pool, overrides=NO_OVERRIDES)
    assert (await mapping(pool, *gecko))["asset_id"] == "toncoin"
    assert (await mapping(pool, *paprika))["asset_id"] == "the-open-network"
    pinned = parse_overrides(
        '{"assets": [{"asset_id": "toncoin", "symbol": "TON", "name": "Toncoin"}],'
        ' "pins": [{"source": "coinpaprika", "coin_id": "toncoin-the-open-network",'
        ' "asset_id": "toncoin", "note": "TONCOIN is TON"}]}',
        "test",
    )
    assert (await sync_assets(pool, overrides=pinned)).decided
    joined = await mapping(pool, *paprika)
    assert (joined["asset_id"], joined["rule"], joined["method"]) == ("toncoin", "pinned", "file")
    assert joined["reason"] == "pinned to toncoin by file pin: TONCOIN is TON"
    assert (await mapping(pool, *gecko))["asset_id"] == "toncoin"
    assert (await sync_assets(pool, overrides=NO_OVERRIDES)).decided
    back = await mapping(pool, *paprika)
    assert (back["asset_id"], back["rule"], back["method"]) == (
        "the-open-network",
        "name_and_symbol",
        "auto",
    )


async def test_a_failing_mapping_step_leaves_the_run_successful(
    pool: Pool, upstream: Upstream, source_settings: Callable[..., Settings], db_url: str
) -> None:
    """The run's data and status do not depend on the mapping step, which logs its failure."""
    await pool.execute("DROP TABLE asset_pins")
    settings = source_settings(database_url=db_url)
    with structlog.testing.capture_logs() as logs:
        (outcome,) = await Pipeline(settings, pool).run(["coinpaprika"], RunTrigger.CLI)
    assert outcome.status is RunStatus.SUCCESS
    assert outcome.counts.inserted == 81
    failed = [e for e in logs if e["event"] == "asset_mapping_failed"]
    assert len(failed) == 1
    assert failed[0]["source"] == "coinpaprika"
    assert "asset_pins" in failed[0]["error"]


async def test_the_shipped_sample_is_four_assets_by_the_shipped_pins(
    make_settings: Callable[..., Settings], pool: Pool, client: httpx.AsyncClient
) -> None:
    """data/sample.csv names its coins without symbols; the shipped pins make them assets."""
    settings = make_settings(csv_file_path=str(SAMPLE), enabled_sources=["csv"])
    (outcome,) = await Pipeline(settings, pool).run(["csv"], RunTrigger.CLI)
    assert outcome.status is RunStatus.SUCCESS
    rows = await pool.fetch("SELECT coin_id, asset_id, rule, method FROM asset_mappings")
    assert {tuple(r) for r in rows} == {
        ("ardor", "ardor", "pinned", "file"),
        ("bitcoin", "bitcoin", "pinned", "file"),
        ("ethereum", "ethereum", "pinned", "file"),
        ("ripple", "xrp", "pinned", "file"),
    }
    body = (await client.get("/api/v1/assets", params={"symbol": "btc"})).json()
    (bitcoin,) = body["assets"]
    assert [q["source"] for q in bitcoin["sources"]] == ["csv"]
    assert bitcoin["sources"][0]["price_usd"] == 8253.55  # the file's last Bitcoin close
