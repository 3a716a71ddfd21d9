"""A JSON response rendered by orjson (times in the API's one format, `models.times`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from starlette.responses import JSONResponse

from cryptoetl.models.times import utc_text

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_text(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class JsonResponse(JSONResponse):
    """A JSONResponse (so OpenAPI documents the route's model) rendered by orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTIONS, default=_default)
