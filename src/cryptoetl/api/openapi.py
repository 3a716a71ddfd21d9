"""The OpenAPI document as client generators need it.

- `operationId` is the route function's name (`get_data`, `get_data_csv`), not FastAPI's
  `get_data_api_v1_data_get`; `create_app` passes `operation_id` as the unique-id function.
- Every string enum carries `x-enum-varnames` (the names openapi-generator, NSwag and
  oapi-codegen give its members): `-market_cap` is `MARKET_CAP_DESC`, `csv` is `CSV`, instead of
  `VALUE_1` or `_MINUS_MARKET_CAP`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

_NOT_A_NAME = re.compile(r"[^A-Za-z0-9]+")


def operation_id(route: APIRoute) -> str:
    """The route function's name: unique in this app (a test checks it)."""
    return route.name


def enum_name(value: str) -> str:
    """A member name for an enum value: upper snake case, a leading `-` as `_DESC`."""
    descending = value.startswith("-")
    name = _NOT_A_NAME.sub("_", value.lstrip("-")).strip("_").upper() or "EMPTY"
    if name[0].isdigit():
        name = f"V_{name}"
    return f"{name}_DESC" if descending else name


def _name_enums(node: Any) -> None:
    if isinstance(node, dict):
        values = node.get("enum")
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            node.setdefault("x-enum-varnames", [enum_name(v) for v in values])
        for value in node.values():
            _name_enums(value)
    elif isinstance(node, list):
        for value in node:
            _name_enums(value)


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` add the enum member names (built once, then cached by FastAPI)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                openapi_version=app.openapi_version,
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
            _name_enums(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
