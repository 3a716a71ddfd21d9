"""Every endpoint answers an unknown query parameter, or a single-valued one given twice, with
a 422 naming it (api/query_rules.py); the parameters it documents still work."""

from __future__ import annotations

import httpx
import pytest

from cryptoetl.db.pool import Pool
from tests.support.api_data import load_rows


def _named(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_parameters"
    assert body["request_id"]
    return [(tuple(d["loc"])[1], d["msg"]) for d in body["detail"]]


@pytest.mark.parametrize("name", ["limit", "min_price", "per_page", "offset"])
async def test_an_unknown_data_parameter_is_a_422_naming_it(
    client: httpx.AsyncClient, pool: Pool, name: str
) -> None:
    await load_rows(pool)
    response = await client.get(f"/api/v1/data?{name}=5")
    [(param, message)] = _named(response)
    assert param == name
    assert "is not a parameter of this endpoint" in message
    assert "page_size" in message
    assert (await client.get("/api/v1/data?page_size=5")).json()["page_size"] == 5


async def test_a_repeated_single_valued_parameter_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/data?source=csv&source=coingecko")
    assert _named(response) == [
        ("source", "given more than once; this parameter takes one value (given 2 times)")
    ]
    response = await client.get("/api/v1/runs?page=1&page=2")
    assert _named(response) == [
        ("page", "given more than once; this parameter takes one value (given 2 times)")
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/health",
        "/api/v1/stats",
        "/api/v1/runs",
        "/api/v1/rejected",
        "/api/v1/assets",
        "/api/v1/assets/bitcoin",
        "/api/v1/asset-mappings",
        "/api/v1/data.csv",
        "/api/v1/data.ndjson",
        "/metrics",
    ],
)
async def test_every_endpoint_refuses_an_unknown_parameter(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, params={"bogus": "1"})
    assert [name for name, _ in _named(response)] == ["bogus"]


async def test_the_exports_paths_take_no_format(client: httpx.AsyncClient) -> None:
    assert [n for n, _ in _named(await client.get("/api/v1/data.csv?format=json"))] == ["format"]


async def test_a_repeatable_parameter_may_repeat(client: httpx.AsyncClient) -> None:
    """The admin trigger's `source` is a list: repeating it is no 422 (here: 403, no token)."""
    response = await client.post("/admin/etl/run?source=csv&source=coingecko")
    assert response.status_code == 403


@pytest.mark.parametrize("path", ["/", "/rejected", "/assets"])
async def test_the_pages_name_an_unknown_parameter_too(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, params={"bogus": "1"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "bogus" in response.text
