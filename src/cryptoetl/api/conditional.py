"""The JSON page of `/api/v1/data` as bytes, its weak ETag, and `If-None-Match`.

A page body is built in two parts: the prefix (data, total, page, page_size, next_cursor),
which depends only on the query and the data version and is what the cache keeps, and the
per-request tail (request_id, api_latency_ms) added on the way out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response

from cryptoetl.api.errors import request_id_of
from cryptoetl.api.middleware import latency_ms


@dataclass(frozen=True, slots=True)
class PageBody:
    prefix: bytes
    etag: str


def etag_for(version_key: Hashable, query_key: Hashable) -> str:
    """The same for the same query on the same data, on every replica."""
    digest = hashlib.blake2b(repr((version_key, query_key)).encode(), digest_size=10)
    return f'W/"{digest.hexdigest()}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison, as RFC 9110 prescribes for If-None-Match."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag.removeprefix("W/") in tags


def page_prefix(
    data_json: str, total: int, page: int, page_size: int, next_cursor: str | None
) -> bytes:
    return b'{"data":%b,"total":%d,"page":%d,"page_size":%d,"next_cursor":%b,' % (
        data_json.encode(),
        total,
        page,
        page_size,
        orjson.dumps(next_cursor),
    )


def page_response(request: Request, body: PageBody) -> Response:
    tail = b'"request_id":%b,"api_latency_ms":%.2f}' % (
        orjson.dumps(request_id_of(request)),
        latency_ms(request),
    )
    headers = {"ETag": body.etag, "Cache-Control": "no-cache"}
    return Response(body.prefix + tail, media_type="application/json", headers=headers)


def not_modified(etag: str) -> Response:
    return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
