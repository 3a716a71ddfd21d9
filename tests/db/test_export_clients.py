"""The exports as people read them: pandas and polars with their defaults, on the three
sources' fixtures loaded through the real pipeline (CoinGecko's millisecond times, CSV files
with date-only times, no symbol column, integral market caps), served by the real app."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pandas as pd
import polars as pl
import pytest

from cryptoetl.config import Settings
from cryptoetl.db.data import float_text
from cryptoetl.db.pool import Pool

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
FLOATS = ("price_usd", "market_cap", "volume_24h")


@pytest.fixture
async def api(
    loaded_fixtures: Settings,
    make_client: Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]],
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(loaded_fixtures) as client:
        yield client


async def test_pandas_reads_the_csv_export_with_datetimes_and_floats(
    api: httpx.AsyncClient,
) -> None:
    for path, params in (("/api/v1/data", {"format": "csv"}), ("/api/v1/data.csv", {})):
        response = await api.get(path, params=params)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == (
            'attachment; filename="cryptoetl-data.csv"'
        )
        frame = pd.read_csv(
            io.BytesIO(response.content), parse_dates=["observed_at", "ingested_at"]
        )
        assert len(frame) > 1000
        for column in ("observed_at", "ingested_at"):
            assert isinstance(frame[column].dtype, pd.DatetimeTZDtype), frame[column].dtype
            assert str(frame[column].dt.tz) == "UTC"
        for column in FLOATS:
            assert frame[column].dtype == "float64", column
        # the 2017 CSV days and CoinGecko's millisecond times are in the same column
        assert frame["observed_at"].min().year <= 2017
        assert (frame["observed_at"].dt.microsecond != 0).any()


async def test_polars_reads_the_ndjson_and_csv_exports_with_defaults(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/api/v1/data.ndjson", params={"source": "csv"})
    assert response.headers["content-disposition"] == (
        'attachment; filename="cryptoetl-data.ndjson"'
    )
    frame = pl.read_ndjson(io.BytesIO(response.content))
    assert frame.schema["symbol"] == pl.String
    assert frame.schema["price_usd"] == pl.Float64
    assert frame.schema["id"] == pl.Int64
    assert frame["observed_at"].str.contains(TIME.pattern).all()

    everything = await api.get("/api/v1/data", params={"format": "ndjson"})
    assert pl.read_ndjson(io.BytesIO(everything.content)).height > 1000

    csv = await api.get("/api/v1/data.csv")
    table = pl.read_csv(io.BytesIO(csv.content), try_parse_dates=True)
    assert table.schema["observed_at"] == pl.Datetime("us", "UTC")
    assert table.schema["price_usd"] == pl.Float64


async def test_times_and_numbers_are_written_the_same_in_every_format(
    api: httpx.AsyncClient, pool: Pool
) -> None:
    """One row with an integral market cap and a millisecond time, in JSON, NDJSON and CSV."""
    row_id = await pool.fetchval(
        "SELECT id FROM unified_crypto_data WHERE source = 'coingecko'"
        " AND market_cap = trunc(market_cap)"
        " AND extract(microseconds FROM observed_at) % 1000000 > 0 ORDER BY id LIMIT 1"
    )
    assert row_id is not None
    params = {
        "coin_id": await pool.fetchval(
            "SELECT coin_id FROM unified_crypto_data WHERE id = $1", row_id
        ),
        "source": "coingecko",
    }
    page = (await api.get("/api/v1/data", params=params)).json()["data"]
    item = next(i for i in page if i["id"] == row_id)
    ndjson = (await api.get("/api/v1/data.ndjson", params=params)).text
    line = next(line for line in ndjson.splitlines() if f'"id":{row_id},' in line)
    csv = (await api.get("/api/v1/data.csv", params=params)).text
    cells = next(c for c in (r.split(",") for r in csv.splitlines()) if c[0] == str(row_id))
    assert TIME.fullmatch(item["observed_at"])
    assert TIME.fullmatch(item["ingested_at"])
    market_cap = cells[5]
    assert market_cap.endswith(".0")
    assert f'"market_cap":{market_cap},' in line
    assert f'"observed_at":"{item["observed_at"]}"' in line
    assert cells[9] == item["observed_at"]
    assert cells[8] == item["ingested_at"]
    raw = (await api.get("/api/v1/data", params=params)).text
    assert f'"market_cap":{market_cap},' in raw


async def test_symbol_finds_rows_of_coins_mapped_to_it(api: httpx.AsyncClient) -> None:
    """The multi-coin CSV file has no symbol column; its Bitcoin rows are mapped to the
    bitcoin asset, so `symbol=BTC` finds them, and they carry BTC."""
    body = (
        await api.get("/api/v1/data", params={"symbol": "btc", "source": "csv", "page_size": 1000})
    ).json()
    names = {(i["name"], i["symbol"]) for i in body["data"]}
    assert ("Bitcoin", "BTC") in names
    assert body["total"] == len(body["data"]) or body["next_cursor"]
    latest = (await api.get("/api/v1/data", params={"symbol": "BTC", "latest": "true"})).json()[
        "data"
    ]
    assert {i["source"] for i in latest} >= {"coingecko", "coinpaprika", "csv"}


async def test_polars_gets_text_columns_when_the_first_lines_have_no_symbol(
    api: httpx.AsyncClient, pool: Pool
) -> None:
    """150 rows of a coin with no symbol and no asset come first: NDJSON writes `""` for the
    unknown symbol (as CSV does), so polars' first-100-lines inference sees text."""
    await pool.execute(
        """
        INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, market_cap,
            volume_24h, source, observed_at, run_id)
        SELECT 'zz-nosymbol', NULL, NULL, 1.5, 10, 2, 'csv',
               '1990-01-01'::timestamptz + n * interval '1 day', 0
        FROM generate_series(1, 150) AS n
        """
    )
    response = await api.get("/api/v1/data.ndjson", params={"sort": "observed_at"})
    first = response.text.splitlines()[0]
    assert '"coin_id":"zz-nosymbol","name":"","symbol":""' in first
    frame = pl.read_ndjson(io.BytesIO(response.content))
    assert frame.schema["symbol"] == pl.String
    assert frame.schema["name"] == pl.String
    bitcoin = frame.filter(pl.col("coin_id") == "bitcoin")["symbol"].str.to_lowercase()
    assert bitcoin.unique().to_list() == ["btc"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (62954300000.0, "62954300000.0"),
        (0.0, "0.0"),
        (-5.0, "-5.0"),
        (999999999999999.0, "999999999999999.0"),
        (1e15, "1e+15"),
        (1e-05, "1e-05"),
        (3682.84, "3682.84"),
    ],
)
async def test_a_float_is_always_written_as_a_float(pool: Pool, value: float, text: str) -> None:
    written = await pool.fetchval(f"SELECT {float_text('$1::float8')}", value)
    assert written == text
    assert float(written) == value
