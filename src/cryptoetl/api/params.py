"""Query parameters, validated so that a bad one is a 422 naming it.

Choices (sources, sorts, run statuses) come from the code's own lists and are published as
enums in the OpenAPI schema. Free-text filters refuse control characters (PostgreSQL cannot
store a NUL, and no coin id has one).

`/api/v1/data` is the hot path: its parameters are one pydantic model (`DataParams`) validated
in a single call, which costs a fraction of FastAPI's per-parameter resolution; the model's JSON
schema is published as the route's OpenAPI parameters, so the documentation is still generated
from the code that validates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
from starlette.datastructures import QueryParams

from cryptoetl.db.data_query import (
    DEFAULT_PAGE_SIZE,
    MAX_ID,
    MAX_PAGE,
    MAX_PAGE_SIZE,
    SORTS,
    QueryError,
    as_utc,
)
from cryptoetl.db.rejected import RejectedKey
from cryptoetl.models import RunStatus
from cryptoetl.sources import REGISTRY

PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


def one_of(values: Sequence[str]) -> str:
    """What a value outside `values` is told."""
    return f"must be one of {', '.join(values)}"


def _one_of(values: Sequence[str]) -> AfterValidator:
    def check(value: str | None) -> str | None:
        if value is not None and value not in values:
            raise ValueError(one_of(values))
        return value

    return AfterValidator(check)


def _enum(values: Sequence[str]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": list(values)})


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return as_utc(value)
    except OverflowError:
        raise ValueError("is out of range") from None


def validation_error(*problems: tuple[tuple[str, ...], str]) -> RequestValidationError:
    """Problems, each `(loc, message)`, as the same 422 a failed FastAPI validation gives."""
    return RequestValidationError(
        [{"loc": loc, "msg": message, "type": "value_error"} for loc, message in problems]
    )


def invalid(error: QueryError) -> RequestValidationError:
    """A `QueryError` as the same 422 a failed FastAPI validation gives."""
    return validation_error((("query", error.param), error.message))


RUN_STATUSES = [status.value for status in RunStatus]
Source = Annotated[str | None, _one_of(REGISTRY.names), _enum(REGISTRY.names)]
SourceName = Annotated[str, _one_of(REGISTRY.names), _enum(REGISTRY.names)]
SortName = Annotated[str | None, _one_of(list(SORTS)), _enum(list(SORTS))]
Time = Annotated[
    datetime | None,
    AfterValidator(_utc),
    # what pydantic reads: an ISO 8601 time, a date (its midnight), or Unix seconds
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
                {"type": "number"},
            ]
        }
    ),
]
Text = Annotated[str | None, Field(min_length=1, max_length=200, pattern=PRINTABLE)]

SourceParam = Annotated[Source, Query(description="Only rows of this source.")]
RunStatusParam = Annotated[
    str | None,
    _one_of(RUN_STATUSES),
    _enum(RUN_STATUSES),
    Query(description="Only runs with this status."),
]

AssetIdParam = Annotated[
    str, Path(min_length=1, max_length=100, pattern=PRINTABLE, description="The asset's id.")
]
RunIdParam = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="Only records last met by this run.")
]


def rejected_cursor(key: RejectedKey) -> str:
    """The `cursor` that continues the rejected-records listing after `key`."""
    return f"{key.run_id}.{key.id}"


_REJECTED_CURSOR = re.compile(r"([0-9]{1,19})\.([0-9]{1,19})")


def parse_rejected_cursor(value: str | None) -> RejectedKey | None:
    """The position a `RejectedCursorParam` names, or the 422 naming `cursor`."""
    if value is None:
        return None
    match = _REJECTED_CURSOR.fullmatch(value)
    key = RejectedKey(int(match.group(1)), int(match.group(2))) if match else None
    if key is None or not (1 <= key.run_id <= MAX_ID and 1 <= key.id <= MAX_ID):
        raise invalid(QueryError("cursor", "not a cursor this API issued; use next_cursor"))
    return key


RejectedCursorParam = Annotated[
    str | None,
    Query(
        max_length=40,
        description="`next_cursor` of the previous page (repeat the same filters with it).",
    ),
]


class DataParams(BaseModel):
    """The query parameters of `GET /api/v1/data`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    page: int | None = Field(
        None, ge=1, le=MAX_PAGE, description="Page number, from 1 (default 1). Not with cursor."
    )
    page_size: int | None = Field(
        None, ge=1, le=MAX_PAGE_SIZE, description=f"Rows per page (default {DEFAULT_PAGE_SIZE})."
    )
    source: Source = Field(None, description="Only rows of this source.")
    coin_id: Text = Field(None, description="Only this coin.", examples=["btc-bitcoin"])
    symbol: Text = Field(None, description="Only this symbol, case-insensitive.", examples=["btc"])
    since: Time = Field(
        None,
        description="Only observations at or after this time: ISO 8601 (UTC when no offset is "
        "given), a date (its midnight, UTC), or Unix seconds.",
        examples=["2025-12-27T00:00:00Z"],
    )
    until: Time = Field(
        None,
        description="Only observations before this time (exclusive).",
        examples=["2025-12-28T00:00:00Z"],
    )
    sort: SortName = Field(
        None,
        description="Order of the rows; `-` means descending. Ties are broken by `id` in the "
        "same direction; null market caps and volumes come last either way. Default `id`.",
    )
    latest: bool = Field(
        False,
        description="Only each coin's newest observation per source, among the rows the other "
        "filters keep.",
    )
    cursor: str | None = Field(
        None, max_length=512, description="`next_cursor` of the previous page. Not with page."
    )
    format: Literal["json", "csv", "ndjson"] | None = Field(
        None,
        description="`json` (a page; the default), or `csv` / `ndjson` (every matching row, "
        "streamed). Also chosen by the Accept header.",
    )

    @classmethod
    def parse(cls, query: QueryParams) -> DataParams:
        """Validate the request's query string, or raise the 422 naming each bad parameter."""
        # unknown and repeated parameters were refused before (api/query_rules.py)
        try:
            return cls.model_validate(query)
        except ValidationError as exc:
            errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
            raise RequestValidationError(errors) from None


def openapi_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The model's fields as OpenAPI query parameters (all optional)."""
    schema = model.model_json_schema()
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        options = [option for option in prop.pop("anyOf", []) if option != {"type": "null"}]
        if len(options) == 1:
            prop.update(options[0])
        elif options:
            prop["anyOf"] = options
        description = prop.pop("description", "")
        prop.pop("title", None)
        examples = prop.pop("examples", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": prop,
        }
        if examples:
            parameter["example"] = examples[0]
        parameters.append(parameter)
    return parameters
