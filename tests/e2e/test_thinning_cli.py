"""Thinning end to end: CSV history loaded by `cryptoetl etl run`, then `cryptoetl maintain`
with FULL_RESOLUTION_DAYS=3 (the issue's check).

Five coins at 5-minute resolution over ten days of 2024 and three coins of daily history over
two years: after maintenance the 5-minute data holds one row per coin per hour (the last one
of the hour, as it was), the daily history is untouched, and the hourly (and daily) history of
a thinned day still reports the open, high, low and close of the original 5-minute prices.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from tests.support.process import CRYPTOETL, Finished, clean_env, etl

FIVE_MIN_COINS = ["Alpha Five", "Bravo Five", "Charlie Five", "Delta Five", "Echo Five"]
DAILY_COINS = ["Xray Daily", "Yankee Daily", "Zulu Daily"]
START = datetime(2024, 3, 1, tzinfo=UTC)
STEPS = 10 * 24 * 12  # ten days of 5-minute observations
DAILY_START = datetime(2023, 1, 1, 23, 59, 59, tzinfo=UTC)
DAYS = 2 * 365
THINNED_DAY = datetime(2024, 3, 5, tzinfo=UTC)


def five_minute_price(coin: int, step: int) -> float:
    """A price that moves within every hour, so an hour's high and low are rarely its close."""
    return round(100.0 * (coin + 1) + ((step * 7919) % 97) / 4, 4)


def five_minute_rows() -> Iterator[tuple[str, datetime, float, float, float]]:
    for coin, name in enumerate(FIVE_MIN_COINS):
        for step in range(STEPS):
            price = five_minute_price(coin, step)
            yield name, START + timedelta(minutes=5 * step), price, price * 1e6, price * 1e3


def daily_rows() -> Iterator[tuple[str, datetime, float, float, float]]:
    for coin, name in enumerate(DAILY_COINS):
        for day in range(DAYS):
            price = round(10.0 * (coin + 1) + day / 8, 4)
            yield name, DAILY_START + timedelta(days=day), price, price * 1e7, price * 1e4


def write_csv(path: Path, rows: Iterator[tuple[str, datetime, float, float, float]]) -> None:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["Name", "Symbol", "Date", "Close", "Volume", "Marketcap"])
        for name, when, price, cap, volume in rows:
            symbol = "".join(word[0] for word in name.split())
            out.writerow([name, symbol, when.strftime("%Y-%m-%d %H:%M:%S"), price, volume, cap])


async def maintain(env: dict[str, str]) -> Finished:
    process = await asyncio.create_subprocess_exec(
        CRYPTOETL,
        "maintain",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


async def observations(pool: Pool, coin_ids: list[str]) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        "SELECT coin_id, observed_at, price_usd, market_cap, volume_24h FROM unified_crypto_data"
        " WHERE coin_id = ANY($1::text[]) ORDER BY coin_id, observed_at",
        coin_ids,
    )
    return [tuple(row) for row in rows]


async def test_maintain_thins_5_minute_history_and_keeps_hourly_extremes(
    db_url: str,
    pool: Pool,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    write_csv(csv_dir / "five_minutes_2024.csv", five_minute_rows())
    write_csv(csv_dir / "daily_2023_2024.csv", daily_rows())
    env = clean_env(DATABASE_URL=db_url, CSV_FILE_PATH=str(csv_dir), LOG_LEVEL="WARNING")
    loaded = await etl(env, "--source", "csv")
    assert loaded.code == 0, loaded.stderr
    five_ids = [f"{name.lower().replace(' ', '-')}" for name in FIVE_MIN_COINS]
    daily_ids = [f"{name.lower().replace(' ', '-')}" for name in DAILY_COINS]
    assert len(await observations(pool, five_ids)) == 5 * STEPS
    daily_before = await observations(pool, daily_ids)
    assert len(daily_before) == 3 * DAYS

    done = await maintain({**env, "FULL_RESOLUTION_DAYS": "3"})

    assert done.code == 0, done.stderr
    # one row per coin per hour: the last of the hour, exactly as it was stored
    kept = await observations(pool, five_ids)
    assert len(kept) == 5 * STEPS // 12
    expected = [
        (five_ids[coin], START + timedelta(minutes=5 * step), five_minute_price(coin, step))
        for coin in range(5)
        for step in range(11, STEPS, 12)
    ]
    assert [row[:3] for row in kept] == sorted(expected)
    # the daily history is untouched
    assert await observations(pool, daily_ids) == daily_before
    # the exact total follows the rows that left
    total = await pool.fetchval("SELECT sum(row_count) FROM source_stats")
    assert total == await pool.fetchval("SELECT count(*) FROM unified_crypto_data")
    assert total == 5 * STEPS // 12 + 3 * DAYS

    asset = await pool.fetchval(
        "SELECT asset_id FROM asset_mappings WHERE source = 'csv' AND coin_id = $1", five_ids[2]
    )
    assert asset is not None
    async with make_client(make_settings()) as client:
        response = await client.get(
            f"/api/v1/assets/{asset}/history",
            params={
                "interval": "1h",
                "source": "csv",
                "since": THINNED_DAY.isoformat(),
                "until": (THINNED_DAY + timedelta(days=1)).isoformat(),
            },
        )
        assert response.status_code == 200, response.text
        hours = response.json()["buckets"]
        daily = await client.get(
            f"/api/v1/assets/{asset}/history",
            params={"interval": "1d", "source": "csv", "since": THINNED_DAY.isoformat()},
        )
        assert daily.status_code == 200, daily.text
    first_step = (THINNED_DAY - START) // timedelta(minutes=5)
    assert len(hours) == 24
    for hour, bucket in enumerate(hours):
        steps = range(first_step + 12 * hour, first_step + 12 * (hour + 1))
        prices = [five_minute_price(2, step) for step in steps]
        start = datetime.fromisoformat(bucket["start"])  # the API writes UTC with a Z
        assert start == THINNED_DAY + timedelta(hours=hour)
        assert (bucket["open"], bucket["high"], bucket["low"], bucket["close"]) == (
            prices[0],
            max(prices),
            min(prices),
            prices[-1],
        )
        assert bucket["count"] == 12
    assert max(b["high"] for b in hours) > max(b["close"] for b in hours)  # a real difference
    day_prices = [five_minute_price(2, s) for s in range(first_step, first_step + 288)]
    first_day = daily.json()["buckets"][0]
    first_start = datetime.fromisoformat(first_day["start"])
    assert (first_start, first_day["count"]) == (THINNED_DAY, 288)
    assert (first_day["high"], first_day["low"]) == (max(day_prices), min(day_prices))

    # a second run finds nothing left to thin and changes nothing
    again = await maintain({**env, "FULL_RESOLUTION_DAYS": "3"})
    assert again.code == 0, again.stderr
    assert len(await observations(pool, five_ids)) == 5 * STEPS // 12
