"""Requests built to hurt, on the real app and database: every one is a 4xx in the API's JSON
shape with the request id, never a 500 (bodies, cursors, pins, repeated parameters)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import orjson
import pytest

from cryptoetl.config import Settings
from cryptoetl.db.data_query import CURSOR_VERSION
from cryptoetl.db.pool import Pool
from cryptoetl.etl.service import open_etl

TOKEN = "adm1n-t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def client(
    make_client: ClientFactory, make_settings: Callable[..., Settings]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(admin_token=TOKEN, api_max_body_kb=64, enabled_sources="csv")
    async with make_client(settings, etl=open_etl) as client:
        yield client


def assert_error(response: httpx.Response, status: int, rid: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, object] = response.json()
    assert body["request_id"] == rid
    assert response.headers["x-request-id"] == rid
    return body


async def test_admin_auth_is_checked_before_the_body(client: httpx.AsyncClient) -> None:
    """An unauthenticated POST with a body over the limit is refused by auth (401), with the
    body not read; with the token it is 413 naming the setting."""
    big = b"{" + b" " * (200 * 1024) + b"}"
    rid = {"X-Request-ID": "big-1"}
    body = assert_error(await client.post("/admin/etl/run", content=big, headers=rid), 401, "big-1")
    assert body["error"] == "unauthorized"
    rid = {"X-Request-ID": "big-2"}
    body = assert_error(
        await client.post("/admin/etl/run", content=big, headers=AUTH | rid), 413, "big-2"
    )
    assert body["error"] == "payload_too_large"
    assert "API_MAX_BODY_KB" in str(body["detail"])


async def test_a_body_without_a_length_is_cut_at_the_limit(client: httpx.AsyncClient) -> None:
    """Chunked (no Content-Length): counted while read, 413 once over the limit."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"sources": ["csv"'
        for _ in range(100):
            yield b" " * 1024
        yield b"]}"

    response = await client.post(
        "/admin/etl/run", content=chunks(), headers=AUTH | {"X-Request-ID": "chunked"}
    )
    assert_error(response, 413, "chunked")


async def test_a_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/admin/etl/run",
        content=b'{"sources": [',
        headers=AUTH | {"Content-Type": "application/json", "X-Request-ID": "bad-json"},
    )
    body = assert_error(response, 400, "bad-json")
    assert body["error"] == "bad_request"


def forged_cursor(value: object) -> str:
    doc = [CURSOR_VERSION, "observed_at", value, 1, 2, ""]
    return base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
@pytest.mark.parametrize("fmt", ["json", "csv"])
async def test_a_forged_cursor_out_of_the_calendar_is_422(
    client: httpx.AsyncClient, when: str, fmt: str
) -> None:
    response = await client.get(
        "/api/v1/data",
        params={"sort": "observed_at", "cursor": forged_cursor(when), "format": fmt},
        headers={"X-Request-ID": "cur"},
    )
    body = assert_error(response, 422, "cur")
    assert body["detail"][0]["loc"] == ["query", "cursor"]  # type: ignore[index]


@pytest.mark.parametrize(
    "pin",
    [
        {"source": "csv", "coin_id": "btc", "asset_id": "bit\u0000coin"},
        {"source": "csv", "coin_id": "btc", "asset_id": "new", "symbol": "B\u0000", "name": "N"},
        {"source": "csv", "coin_id": "btc", "asset_id": "new", "symbol": "B", "name": "N\u0000"},
    ],
)
async def test_a_nul_in_an_asset_pin_is_422(client: httpx.AsyncClient, pin: dict[str, str]) -> None:
    response = await client.post(
        "/admin/asset-pins", json=pin, headers=AUTH | {"X-Request-ID": "nul"}
    )
    assert_error(response, 422, "nul")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/data?source=csv&source=coingecko",
        "/api/v1/data?page=1&page=2",
        "/api/v1/runs?source=csv&source=coingecko",
        "/api/v1/rejected?source=csv&source=csv",
        "/api/v1/assets?q=a&q=b",
    ],
)
async def test_a_repeated_single_valued_parameter_is_422(
    client: httpx.AsyncClient, path: str
) -> None:
    body = assert_error(await client.get(path, headers={"X-Request-ID": "rep"}), 422, "rep")
    problems: list[dict[str, Any]] = body["detail"]  # type: ignore[assignment]
    (problem,) = problems
    assert problem["loc"][0] == "query"
    assert "more than once" in problem["msg"]


async def test_a_list_parameter_may_repeat(client: httpx.AsyncClient) -> None:
    """`/admin/etl/run?source=` takes a list: repeating it is no error (here: one source)."""
    response = await client.post("/admin/etl/run?source=csv&source=csv", headers=AUTH)
    assert response.status_code == 202, response.text
    assert list(response.json()["run_ids"]) == ["csv"]


async def test_a_huge_rejected_line_is_served_bounded(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    """A 5,000,000-character raw line already stored: the listing, the run and the page each
    serve its first 4,096 characters, a marker with the whole length, and `raw_length`."""
    run_id = await pool.fetchval(
        "INSERT INTO etl_runs (source, trigger, status, finished_at, owner)"
        " VALUES ('csv', 'cli', 'partial', now(), 'test') RETURNING id"
    )
    huge = "x," * 2_500_000
    await pool.execute(
        "INSERT INTO rejected_records (source, first_run_id, last_run_id, locator, file,"
        " line_no, raw, reason, raw_hash) VALUES ('csv', $1, $1, 'big.csv:2', 'big.csv', 2,"
        " $2, 'a field is larger than the field size limit', 'h')",
        run_id,
        huge,
    )
    marker = " [... truncated: 5000000 characters in all]"
    listing = await client.get("/api/v1/rejected")
    assert listing.status_code == 200
    assert len(listing.content) < 20_000
    (entry,) = listing.json()["rejected"]
    assert entry["raw"] == huge[:4096] + marker
    assert entry["raw_length"] == 5_000_000
    run = await client.get(f"/api/v1/runs/{run_id}")
    assert len(run.content) < 20_000
    (sample,) = run.json()["rejected_records"]["sample"]
    assert sample["raw"] == huge[:4096] + marker
    page = await client.get("/rejected")
    assert page.status_code == 200
    assert len(page.content) < 100_000
    assert "truncated: 5000000 characters in all" in page.text
