"""GET /api/v1/data on the real app and a real database: shape, values, filters, paging."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from tests.support.api_data import eventually, load_rows

# the seed's item fields, then observed_at: the JSON keys and the CSV header, in this order
ITEM_COLUMNS = [
    "id",
    "coin_id",
    "name",
    "symbol",
    "price_usd",
    "market_cap",
    "volume_24h",
    "source",
    "ingested_at",
    "observed_at",
]
PAGE_FIELDS = {"data", "total", "page", "page_size", "next_cursor", "request_id", "api_latency_ms"}
ORDER = {
    "id": "id ASC",
    "-id": "id DESC",
    "observed_at": "observed_at ASC, id ASC",
    "-observed_at": "observed_at DESC, id DESC",
    "price_usd": "price_usd ASC, id ASC",
    "-price_usd": "price_usd DESC, id DESC",
    "market_cap": "market_cap ASC NULLS LAST, id ASC",
    "-market_cap": "market_cap DESC NULLS LAST, id DESC",
    "volume_24h": "volume_24h ASC NULLS LAST, id ASC",
    "-volume_24h": "volume_24h DESC NULLS LAST, id DESC",
}

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(params=[32, 0], ids=["cache", "no-cache"])
async def api(
    request: pytest.FixtureRequest,
    pool: Pool,
    make_settings: Callable[..., Settings],
    make_client: MakeClient,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app over 100 rows (5 coins x 10 hours x 2 sources), with and without its cache."""
    await load_rows(pool)
    async with make_client(make_settings(api_cache_mb=request.param)) as client:
        yield client


def _db_item(row: Any) -> dict[str, Any]:
    return dict(row)


def _api_item(item: dict[str, Any]) -> dict[str, Any]:
    values = dict(item)
    for field in ("ingested_at", "observed_at"):
        values[field] = datetime.fromisoformat(values[field])
    return values


async def test_a_page_is_the_seed_shape_with_database_values(
    api: httpx.AsyncClient, pool: Pool
) -> None:
    """Page 2 of 7: exactly the seed's fields plus next_cursor, values as stored."""
    response = await api.get("/api/v1/data", params={"page": 2, "page_size": 7})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == PAGE_FIELDS
    assert body["total"] == 100
    assert (body["page"], body["page_size"]) == (2, 7)
    assert body["request_id"] == response.headers["x-request-id"]
    assert isinstance(body["api_latency_ms"], float)
    assert isinstance(body["next_cursor"], str)
    rows = await pool.fetch(
        "SELECT id, coin_id, name, symbol, price_usd, market_cap, volume_24h, source,"
        " ingested_at, observed_at FROM unified_crypto_data ORDER BY id LIMIT 7 OFFSET 7"
    )
    assert all(list(item) == ITEM_COLUMNS for item in body["data"])
    assert [_api_item(item) for item in body["data"]] == [_db_item(row) for row in rows]


@pytest.mark.parametrize("sort", list(ORDER))
async def test_following_next_cursor_visits_every_row_once_in_order(
    api: httpx.AsyncClient, pool: Pool, sort: str
) -> None:
    """Keyset paging over every sort (nulls last) gives the database's order, no gap, no repeat."""
    order_sql = f"SELECT id FROM unified_crypto_data ORDER BY {ORDER[sort]}"  # noqa: S608
    expected = [r["id"] for r in await pool.fetch(order_sql)]
    seen: list[int] = []
    pages = []
    params: dict[str, Any] = {"sort": sort, "page_size": 7}
    while True:
        body = (await api.get("/api/v1/data", params=params)).json()
        seen += [item["id"] for item in body["data"]]
        pages.append(body["page"])
        assert body["total"] == 100
        if body["next_cursor"] is None:
            break
        params = {"cursor": body["next_cursor"], "page_size": 7}
    assert seen == expected
    assert pages == list(range(1, len(pages) + 1))


@pytest.mark.parametrize(
    ("params", "where", "args"),
    [
        ({"source": "csv"}, "source = $1", ["csv"]),
        ({"coin_id": "coin-3"}, "coin_id = $1", ["coin-3"]),
        ({"symbol": "C4"}, "lower(symbol) = $1", ["c4"]),
        (
            {"since": "2025-01-01T03:00:00Z", "until": "2025-01-01T05:00:00+00:00"},
            "observed_at >= '2025-01-01T03:00:00Z' AND observed_at < '2025-01-01T05:00:00Z'",
            [],
        ),
        (
            {"source": "coingecko", "coin_id": "coin-1", "since": "2025-01-01T06:00:00"},
            "source = 'coingecko' AND coin_id = 'coin-1' AND observed_at >= '2025-01-01T06:00Z'",
            [],
        ),
    ],
)
async def test_filters_select_exactly_the_matching_rows(
    api: httpx.AsyncClient, pool: Pool, params: dict[str, str], where: str, args: list[str]
) -> None:
    """Each filter (symbol case-insensitive, until exclusive, naive times UTC) and its total."""
    rows = await pool.fetch(
        f"SELECT id FROM unified_crypto_data WHERE {where} ORDER BY id",  # noqa: S608
        *args,
    )
    body = (await api.get("/api/v1/data", params={**params, "page_size": 1000})).json()
    assert [item["id"] for item in body["data"]] == [row["id"] for row in rows]
    assert body["total"] == len(rows) > 0


async def test_latest_is_each_coins_newest_observation_per_source(
    api: httpx.AsyncClient, pool: Pool
) -> None:
    """latest=true: one row per (source, coin), the newest; with until, the newest before it."""
    body = (await api.get("/api/v1/data", params={"latest": "true", "sort": "-market_cap"})).json()
    assert body["total"] == 10
    assert {(i["source"], i["coin_id"]) for i in body["data"]} == {
        (s, f"coin-{c}") for s in ("coingecko", "csv") for c in range(1, 6)
    }
    assert {i["observed_at"] for i in body["data"]} == {"2025-01-01T09:00:00.000000Z"}
    caps = [i["market_cap"] for i in body["data"]]
    assert caps == sorted(caps, key=lambda v: (v is None, -(v or 0)))
    older = await api.get(
        "/api/v1/data", params={"latest": "true", "until": "2025-01-01T04:00:00Z", "source": "csv"}
    )
    assert {i["observed_at"] for i in older.json()["data"]} == {"2025-01-01T03:00:00.000000Z"}
    assert older.json()["total"] == 5
    one = (await api.get("/api/v1/data", params={"latest": "true", "symbol": "c2"})).json()
    assert [(i["source"], i["coin_id"]) for i in one["data"]] == [
        ("coingecko", "coin-2"),
        ("csv", "coin-2"),
    ]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"page": "0"}, "page"),
        ({"page": "x"}, "page"),
        ({"page_size": "1001"}, "page_size"),
        ({"page_size": "0"}, "page_size"),
        ({"source": "binance"}, "source"),
        ({"sort": "name"}, "sort"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-13-01"}, "until"),
        ({"coin_id": "bit\x00coin"}, "coin_id"),
        ({"format": "xml"}, "format"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"since": "2025-01-02", "until": "2025-01-01"}, "until"),
    ],
)
async def test_bad_parameters_answer_422_naming_them(
    api: httpx.AsyncClient, params: dict[str, str], param: str
) -> None:
    """A bad parameter is a 422 JSON error naming it, with the request id."""
    response = await api.get("/api/v1/data", params=params, headers={"X-Request-ID": "bad-1"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_parameters"
    assert body["request_id"] == "bad-1" == response.headers["x-request-id"]
    assert ["query", param] in [error["loc"] for error in body["detail"]]


async def test_a_cursor_only_continues_its_own_query(api: httpx.AsyncClient) -> None:
    """A cursor with page, with other filters or another sort is refused; alone it works."""
    first = (await api.get("/api/v1/data", params={"source": "csv", "page_size": 3})).json()
    cursor = first["next_cursor"]
    for params in (
        {"cursor": cursor, "page": 2, "source": "csv"},
        {"cursor": cursor, "source": "coingecko"},
        {"cursor": cursor, "source": "csv", "sort": "-id"},
    ):
        response = await api.get("/api/v1/data", params=params)
        assert response.status_code == 422, params
    ok = await api.get("/api/v1/data", params={"cursor": cursor, "source": "csv"})
    assert ok.status_code == 200
    assert ok.json()["page"] == 2
    assert ok.json()["data"][0]["id"] > first["data"][-1]["id"]


async def test_a_page_past_the_end_is_empty(api: httpx.AsyncClient) -> None:
    """Page 1000 of 100 rows: no data, the real total, no cursor."""
    body = (await api.get("/api/v1/data", params={"page": 1000})).json()
    assert (body["data"], body["total"], body["next_cursor"]) == ([], 100, None)
    last = (await api.get("/api/v1/data", params={"page": 10, "page_size": 10})).json()
    assert len(last["data"]) == 10
    assert last["next_cursor"] is None


async def test_etag_revalidates_until_the_data_changes(api: httpx.AsyncClient, pool: Pool) -> None:
    """Same data: 304 with the ETag; after a load: 200 with the new total and another ETag."""
    first = await api.get("/api/v1/data", params={"coin_id": "coin-1"})
    etag = first.headers["etag"]
    again = await api.get(
        "/api/v1/data",
        params={"coin_id": "coin-1"},
        headers={"If-None-Match": etag, "X-Request-ID": "revalidate"},
    )
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    assert again.headers["x-request-id"] == "revalidate"
    await pool.execute(
        "INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id)"
        " VALUES ('coin-1', 1, 'csv', '2030-01-01', 0)"
    )

    async def probe() -> httpx.Response:
        return await api.get(
            "/api/v1/data", params={"coin_id": "coin-1"}, headers={"If-None-Match": etag}
        )

    changed = await eventually(probe, lambda r: r.status_code == 200)
    assert changed.status_code == 200
    assert changed.json()["total"] == first.json()["total"] + 1 == 21
    assert changed.headers["etag"] != etag


async def test_exports_stream_every_matching_row(api: httpx.AsyncClient, pool: Pool) -> None:
    """CSV (header + rows) and NDJSON carry every matching row, as stored, with a request id."""
    rows = await pool.fetch(
        "SELECT id, coin_id, market_cap FROM unified_crypto_data WHERE source = 'csv' ORDER BY id"
    )
    csv = await api.get("/api/v1/data", params={"format": "csv", "source": "csv"})
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["x-request-id"]
    lines = csv.text.splitlines()
    assert lines[0].split(",") == ITEM_COLUMNS
    cells = [line.split(",") for line in lines[1:]]
    assert [int(c[0]) for c in cells] == [r["id"] for r in rows]
    assert [c[5] for c in cells] == [
        "" if r["market_cap"] is None else str(r["market_cap"]) for r in rows
    ]
    ndjson = await api.get(
        "/api/v1/data", params={"source": "csv"}, headers={"Accept": "application/x-ndjson"}
    )
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    page = (await api.get("/api/v1/data", params={"source": "csv", "page_size": 1000})).json()
    assert [orjson.loads(line) for line in ndjson.text.splitlines()] == page["data"]


async def test_exports_honour_page_size_cursor_and_explicit_format(
    api: httpx.AsyncClient,
) -> None:
    """page_size limits an export; a cursor starts it; format= wins over Accept."""
    limited = await api.get("/api/v1/data", params={"format": "ndjson", "page_size": 4})
    assert len(limited.text.splitlines()) == 4
    cursor = (await api.get("/api/v1/data", params={"page_size": 95})).json()["next_cursor"]
    rest = await api.get(
        "/api/v1/data",
        params={"cursor": cursor, "format": "csv"},
        headers={"Accept": "application/x-ndjson"},
    )
    assert rest.headers["content-type"].startswith("text/csv")
    assert len(rest.text.splitlines()) == 1 + 5
    fallback = await api.get("/api/v1/data", headers={"Accept": "image/png, */*;q=0.1"})
    assert fallback.headers["content-type"] == "application/json"


async def test_cursor_paging_over_latest_and_a_time_window(api: httpx.AsyncClient) -> None:
    """Keyset paging works on the derived sets too: latest rows, and a window by time."""
    for params in (
        {"latest": "true", "sort": "-market_cap"},
        {"since": "2025-01-01T02:00:00Z", "until": "2025-01-01T07:00:00Z", "sort": "-observed_at"},
    ):
        whole = (await api.get("/api/v1/data", params={**params, "page_size": 1000})).json()
        seen: list[int] = []
        query: dict[str, Any] = {**params, "page_size": 3}
        while True:
            body = (await api.get("/api/v1/data", params=query)).json()
            assert body["total"] == whole["total"]
            seen += [item["id"] for item in body["data"]]
            if body["next_cursor"] is None:
                break
            query = {**params, "page_size": 3, "cursor": body["next_cursor"]}
            query.pop("sort")
        assert seen == [item["id"] for item in whole["data"]]
