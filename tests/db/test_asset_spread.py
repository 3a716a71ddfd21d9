"""An asset's median and spread compare only prices observed close together in time (within
three ETL intervals of the newest); an older price, such as the shipped 2017 sample CSV's, is
listed apart, marked older, and kept out of both."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from cryptoetl.assets.sync import sync_assets
from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from tests.support.html_tree import parse_html

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def _observe(
    pool: Pool, source: str, coin: str, symbol: str | None, price: float, when: datetime
) -> None:
    await pool.execute(
        "INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, source, observed_at,"
        " run_id) VALUES ($1, 'Bitcoin', $2, $3, $4, $5, 0)",
        coin,
        symbol,
        price,
        source,
        when,
    )


async def test_an_old_csv_price_is_listed_apart_and_not_compared(
    pool: Pool, make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    now = datetime.now(UTC)
    await _observe(pool, "coingecko", "bitcoin", "btc", 100.0, now - timedelta(minutes=5))
    await _observe(pool, "coinpaprika", "btc-bitcoin", "BTC", 101.0, now - timedelta(minutes=2))
    await _observe(pool, "csv", "bitcoin", None, 3682.84, datetime(2017, 11, 22, tzinfo=UTC))
    await sync_assets(pool, refresh=True, force=True)
    settings = make_settings(etl_interval_seconds=900)
    async with make_client(settings) as client:
        body = (await client.get("/api/v1/assets/bitcoin")).json()
        page = parse_html((await client.get("/assets/bitcoin")).text)

    spread = body["spread"]
    assert spread["compared"] == 2
    assert spread["older"] == 1
    assert spread["window_seconds"] == 2700  # three ETL intervals
    assert spread["median_price"] == pytest.approx(100.5)
    assert spread["percent"] == pytest.approx(1 / 100.5 * 100)
    assert spread["max_price"] == 101.0  # the 2017 close is in neither
    compared = {q["source"]: q["compared"] for q in body["sources"]}
    assert compared == {"coingecko": True, "coinpaprika": True, "csv": False}

    older = page.one("tbody", data_field="older")
    assert [row.attrs["data-source"] for row in older.all("tr", class_="older")] == ["csv"]
    badges = [b.text() for b in older.one("tr", data_source="csv").all(class_="badge")]
    assert badges == ["OLDER", "STALE"]
    assert "within 45 min of the newest" in page.one(data_field="spread").text()


async def test_with_only_old_prices_they_are_compared_among_themselves(
    pool: Pool, make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    """Only the sample CSV loaded (no network): its price is the asset's, alone."""
    await _observe(pool, "csv", "bitcoin", None, 3682.84, datetime(2017, 11, 22, tzinfo=UTC))
    await sync_assets(pool, refresh=True, force=True)
    async with make_client(make_settings()) as client:
        body = (await client.get("/api/v1/assets/bitcoin")).json()
        week = parse_html((await client.get("/assets/bitcoin?range=7d")).text)
    # the last week has no price, but older ones exist: said so, not "no prices yet"
    empty = week.one("svg", class_="empty").text()
    assert "No prices in this range: the newest is from 2017-11-22" in empty
    assert body["spread"]["compared"] == 1
    assert body["spread"]["older"] == 0
    assert body["spread"]["median_price"] == 3682.84
