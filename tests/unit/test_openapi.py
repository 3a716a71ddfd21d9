"""The OpenAPI document as a generated client reads it: readable operation ids, named enum
members, every closed set of values an enum, and the CSV export described."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cryptoetl.api.docs_pages import REDOC_CDN_LOGO, assets_dir
from cryptoetl.api.openapi import enum_name
from cryptoetl.app import create_app
from cryptoetl.db.data import COLUMNS
from cryptoetl.sources import REGISTRY, load_settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(load_settings(env_file=None, database_url="postgresql://u@/db"))
    schema: dict[str, Any] = app.openapi()
    ids = [op["operationId"] for path in schema["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))  # each once
    assert all(i.isidentifier() and "api_v1" not in i for i in ids), ids
    return schema


def _enums(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if "enum" in node:
            found.append(node)
        for value in node.values():
            found.extend(_enums(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_enums(value))
    return found


def test_operation_ids_are_the_route_names(document: dict[str, Any]) -> None:
    assert document["paths"]["/api/v1/data"]["get"]["operationId"] == "get_data"
    assert document["paths"]["/api/v1/data.csv"]["get"]["operationId"] == "get_data_csv"
    assert document["paths"]["/api/v1/health"]["get"]["operationId"] == "health"


def test_every_enum_names_its_members(document: dict[str, Any]) -> None:
    enums = _enums(document)
    assert len(enums) > 5
    for schema in enums:
        names = schema["x-enum-varnames"]
        assert len(names) == len(schema["enum"]) == len(set(names))
        assert all(name.isidentifier() and name.isupper() for name in names)
    assert enum_name("-market_cap") == "MARKET_CAP_DESC"
    assert enum_name("volume_24h") == "VOLUME_24H"


def test_the_source_path_parameter_is_an_enum(document: dict[str, Any]) -> None:
    operation = document["paths"]["/admin/asset-pins/{source}/{coin_id}"]["delete"]
    [source] = [p for p in operation["parameters"] if p["name"] == "source"]
    assert source["schema"]["enum"] == list(REGISTRY.names)


def test_the_csv_format_is_described(document: dict[str, Any]) -> None:
    operation = document["paths"]["/api/v1/data.csv"]["get"]
    assert all(f"`{column}`" in operation["description"] for column in COLUMNS)
    example = operation["responses"]["200"]["content"]["text/csv"]["example"]
    assert example.splitlines()[0].split(",") == list(COLUMNS)
    names = {p["name"] for p in operation["parameters"]}
    assert "format" not in names
    assert {"source", "symbol", "since", "until", "sort", "page_size"} <= names


async def test_redoc_is_served_without_its_cdn_logo() -> None:
    """`/redoc` loads ReDoc's bundle from the service, with the one address on another host
    (the sidebar's logo, on Redocly's CDN) replaced by an inline image."""
    assert REDOC_CDN_LOGO in (assets_dir() / "redoc.standalone.js").read_text(encoding="utf-8")
    app = create_app(load_settings(env_file=None, database_url="postgresql://u@/db"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get("/redoc")
        assert page.status_code == 200
        assert '<script src="/static/api-docs/redoc.offline.js">' in page.text
        bundle = await client.get("/static/api-docs/redoc.offline.js")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert "cdn.redoc.ly" not in bundle.text
    assert 'src:"data:image/svg+xml,' in bundle.text
    assert len(bundle.text) > 500_000  # the whole bundle, not a stub
