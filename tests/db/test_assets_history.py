"""GET /api/v1/assets/{id}/history against hand-computed buckets, and against a real daily CSV."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cryptoetl.assets.sync import sync_assets
from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunStatus, RunTrigger
from tests.support import FIXTURES
from tests.support.assets_data import copy_csv_fixtures, load_series

KAGGLE_ETH = "csv_kaggle_coin_Ethereum.csv"
BOTH = ["coingecko", "coinpaprika"]


@pytest.fixture
async def series(pool: Pool) -> Pool:
    """The hand-written series (tests/support/assets_data.py SERIES), mapped to one asset."""
    await load_series(pool)
    await sync_assets(pool)
    return pool


def bucket(
    start: str,
    ohlc: tuple[float, float, float, float],
    cap: float | None,
    volume: float | None,
    count: int,
    sources: list[str],
) -> dict[str, Any]:
    o, h, low, c = ohlc
    return {
        "start": start,
        "open": o,
        "high": h,
        "low": low,
        "close": c,
        "market_cap": cap,
        "volume_24h": volume,
        "count": count,
        "sources": sources,
    }


async def history(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/assets/testcoin/history", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_series_is_one_asset(series: Pool) -> None:
    """Both sources' Testcoin is one asset (same name and symbol)."""
    rows = await series.fetch("SELECT source, coin_id, asset_id FROM asset_mappings ORDER BY 1")
    assert [tuple(r) for r in rows] == [
        ("coingecko", "testcoin", "testcoin"),
        ("coinpaprika", "tst-testcoin", "testcoin"),
    ]


async def test_hourly_buckets_of_one_source(series: Pool, client: httpx.AsyncClient) -> None:
    """OHLC from the source's observations; cap and volume of the last one that has them."""
    body = await history(client, interval="1h", source="coingecko")
    assert (body["source"], body["combined"], body["next_since"]) == ("coingecko", None, None)
    cg = ["coingecko"]
    assert body["buckets"] == [
        # 10:00 10, 10:20 12, 10:40 9 (no cap), 10:50 8.5 (no cap): the cap is 10:20's
        bucket("2025-03-01T10:00:00.000000Z", (10, 12, 8.5, 8.5), 120, 850, 4, cg),
        # an observation at 11:00:00 opens the 11:00 bucket
        bucket("2025-03-01T11:00:00.000000Z", (11, 11, 11, 11), 110, 1100, 1, cg),
        # no volume in the bucket at all: null
        bucket("2025-03-01T12:00:00.000000Z", (13, 13, 13, 13), 130, None, 1, cg),
        bucket("2025-03-01T23:00:00.000000Z", (15, 15, 15, 15), 150, 1500, 1, cg),
        bucket("2025-03-02T00:00:00.000000Z", (16, 16, 16, 16), 160, 1600, 1, cg),
    ]


async def test_hourly_buckets_combined(series: Pool, client: httpx.AsyncClient) -> None:
    """Every source's observations in one series; a tie at the close goes to the later source
    name (coinpaprika after coingecko)."""
    body = await history(client, interval="1h")
    assert body["source"] is None
    assert "every observation of every mapped coin of every source" in body["combined"]
    assert body["buckets"] == [
        # 10:00 cg 10, 10:20 cg 12 + cp 12.5, 10:40 cg 9, 10:50 cg 8.5 + cp 8
        bucket("2025-03-01T10:00:00.000000Z", (10, 12.5, 8, 8), 80, 800, 6, BOTH),
        # 11:00 cg 11, 11:30 cp 14
        bucket("2025-03-01T11:00:00.000000Z", (11, 14, 11, 14), 140, 1400, 2, BOTH),
        bucket("2025-03-01T12:00:00.000000Z", (13, 13, 13, 13), 130, None, 1, ["coingecko"]),
        bucket("2025-03-01T23:00:00.000000Z", (15, 15, 15, 15), 150, 1500, 1, ["coingecko"]),
        bucket("2025-03-02T00:00:00.000000Z", (16, 16, 16, 16), 160, 1600, 1, ["coingecko"]),
    ]


async def test_daily_buckets_split_at_utc_midnight(series: Pool, client: httpx.AsyncClient) -> None:
    """23:59:59 is the first day's close, 00:00:00 the next day's open."""
    combined = await history(client, interval="1d")
    assert combined["buckets"] == [
        bucket("2025-03-01T00:00:00.000000Z", (10, 15, 8, 15), 150, 1500, 10, BOTH),
        bucket("2025-03-02T00:00:00.000000Z", (16, 16, 16, 16), 160, 1600, 1, ["coingecko"]),
    ]
    paprika = await history(client, interval="1d", source="coinpaprika")
    assert paprika["buckets"] == [
        bucket("2025-03-01T00:00:00.000000Z", (12.5, 14, 8, 14), 140, 1400, 3, ["coinpaprika"]),
    ]


async def test_since_and_until_cut_observations_not_buckets(
    series: Pool, client: httpx.AsyncClient
) -> None:
    """since is inclusive, until exclusive; buckets stay aligned to the hour."""
    body = await history(
        client, interval="1h", since="2025-03-01T10:30:00Z", until="2025-03-01T11:30:00Z"
    )
    assert body["buckets"] == [
        bucket("2025-03-01T10:00:00.000000Z", (9, 9, 8, 8), 80, 800, 3, BOTH),
        bucket("2025-03-01T11:00:00.000000Z", (11, 11, 11, 11), 110, 1100, 1, ["coingecko"]),
    ]
    assert body["since"] == "2025-03-01T10:30:00.000000Z"
    exact = await history(client, interval="1h", since="2025-03-01T11:00:00Z")
    assert exact["buckets"][0]["start"] == "2025-03-01T11:00:00.000000Z"
    assert exact["buckets"][0]["count"] == 2


async def test_limit_pages_with_next_since(series: Pool, client: httpx.AsyncClient) -> None:
    """Two buckets at a time, following next_since, gives every bucket once."""
    seen: list[str] = []
    params: dict[str, Any] = {"interval": "1h", "limit": 2}
    while True:
        body = await history(client, **params)
        seen.extend(b["start"] for b in body["buckets"])
        if body["next_since"] is None:
            break
        params["since"] = body["next_since"]
    assert seen == [
        "2025-03-01T10:00:00.000000Z",
        "2025-03-01T11:00:00.000000Z",
        "2025-03-01T12:00:00.000000Z",
        "2025-03-01T23:00:00.000000Z",
        "2025-03-02T00:00:00.000000Z",
    ]


@pytest.mark.parametrize(
    ("path", "params", "status", "where"),
    [
        ("/api/v1/assets/nope/history", {}, 404, None),
        ("/api/v1/assets/testcoin/history", {"interval": "5m"}, 422, "interval"),
        ("/api/v1/assets/testcoin/history", {"source": "kraken"}, 422, "source"),
        ("/api/v1/assets/testcoin/history", {"since": "yesterday"}, 422, "since"),
        (
            "/api/v1/assets/testcoin/history",
            {"since": "2025-03-02", "until": "2025-03-01"},
            422,
            "until",
        ),
        ("/api/v1/assets/testcoin/history", {"limit": 0}, 422, "limit"),
        ("/api/v1/assets/nope", {}, 404, None),
        ("/api/v1/assets", {"page_size": 101}, 422, "page_size"),
        ("/api/v1/assets", {"symbol": ""}, 422, "symbol"),
        ("/api/v1/asset-mappings", {"status": "lost"}, 422, "status"),
    ],
)
async def test_bad_requests_answer_json_errors(
    series: Pool,
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, Any],
    status: int,
    where: str | None,
) -> None:
    """Unknown assets are 404, bad parameters 422 naming them; always JSON with a request id."""
    response = await client.get(path, params=params)
    assert response.status_code == status
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    if where is None:
        assert body["error"] == "not_found"
    else:
        assert body["error"] == "invalid_parameters"
        assert where in [entry["loc"][-1] for entry in body["detail"]]


async def test_a_daily_kaggle_file_gives_one_bucket_per_day_with_its_closes(
    make_settings: Callable[..., Settings],
    pool: Pool,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    """Loaded through the CSV source, Kaggle's Ethereum file is one bucket per row's day, each
    closing at that row's Close."""
    csv_dir = copy_csv_fixtures(tmp_path / "csv", [KAGGLE_ETH])
    settings = make_settings(csv_file_path=str(csv_dir), enabled_sources=["csv"])
    (outcome,) = await Pipeline(settings, pool).run(["csv"], RunTrigger.CLI)
    assert outcome.status is RunStatus.SUCCESS
    with (FIXTURES / "csv" / KAGGLE_ETH).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    response = await client.get(
        "/api/v1/assets/ethereum/history", params={"interval": "1d", "source": "csv"}
    )
    assert response.status_code == 200
    buckets = response.json()["buckets"]
    assert len(buckets) == len(rows) == 2160
    for row, got in zip(rows, buckets, strict=True):
        day = row["Date"][:10]
        assert got["start"] == f"{day}T00:00:00.000000Z"
        assert got["close"] == float(row["Close"])
        assert got["open"] == got["close"]  # one observation per day
        assert got["count"] == 1
        assert got["market_cap"] == float(row["Marketcap"])
