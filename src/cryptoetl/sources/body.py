"""Reading an upstream's answer: the JSON it promised, or an error that says what came instead.

Pure functions over bytes and strings. Every text taken from an answer or a URL passes through
the log's `SecretMasker`, so an API key never reaches a message even when an upstream echoes it
back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from yarl import URL

from cryptoetl.errors import BadPayloadError
from cryptoetl.log import MASK
from cryptoetl.models import SourceRecord

BOM = b"\xef\xbb\xbf"
_SENSITIVE_QUERY = re.compile(r"(key|token|secret|password|auth)", re.I)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.I | re.S)
_SPACES = re.compile(r"\s+")
PREVIEW_CHARS = 120


def display_url(url: str, params: Mapping[str, str] | None, scrub: Callable[[str], str]) -> str:
    """The request URL as it may appear in a message: no password, no key-like parameter."""
    target = URL(url)
    if params:
        target = target.update_query(params)
    if target.password:
        target = target.with_password(MASK)
    query = {
        name: (MASK if _SENSITIVE_QUERY.search(name) else value)
        for name, value in target.query.items()
    }
    if query != dict(target.query.items()):
        target = target.with_query(query)
    return scrub(str(target))


def preview(body: bytes) -> str:
    """The first characters of a body, on one line, for a message."""
    text = body[: PREVIEW_CHARS * 4].decode("utf-8", errors="replace")
    text = _SPACES.sub(" ", text).strip()
    if len(text) > PREVIEW_CHARS:
        text = text[:PREVIEW_CHARS] + "..."
    return repr(text)


def describe_body(body: bytes, content_type: str) -> str:
    """`text/html, 5012 bytes, starting '<!DOCTYPE html>...'`."""
    kind = content_type.split(";")[0].strip() or "no content type"
    if not body:
        return f"{kind}, empty body"
    return f"{kind}, {len(body)} bytes, starting {preview(body)}"


def _message_in(data: Any) -> str | None:
    """The error text in the JSON shapes the providers use."""
    if not isinstance(data, dict):
        return None
    status = data.get("status")
    if isinstance(status, dict) and status.get("error_message"):
        code = status.get("error_code")
        prefix = f"error {code}: " if code is not None else ""
        return f"{prefix}{status['error_message']}"
    for key in ("error", "message", "error_message", "detail"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict):
            nested = _message_in(value)
            if nested:
                return nested
    return None


def upstream_reason(body: bytes, content_type: str) -> str:
    """What the upstream said about an error, in its own words, or what the body looks like."""
    if body and "json" in content_type.lower():
        try:
            message = _message_in(json.loads(body))
        except (ValueError, UnicodeDecodeError):
            message = None
        if message:
            return _SPACES.sub(" ", message).strip()
    if body and "html" in content_type.lower():
        title = _TITLE.search(body)
        if title:
            text = _SPACES.sub(" ", title.group(1).decode("utf-8", errors="replace")).strip()
            return f"an HTML page titled {text!r} ({describe_body(body, content_type)})"
    return describe_body(body, content_type)


def _shape(data: Any) -> str:
    if isinstance(data, dict):
        keys = ", ".join(list(data)[:8])
        return f"an object with keys {keys}" if keys else "an empty object"
    if isinstance(data, list):
        return f"an array of {len(data)} items"
    return f"a {type(data).__name__} ({preview(json.dumps(data).encode())})"


def decode_json(
    body: bytes,
    content_type: str,
    expect: type[list[Any]] | type[dict[str, Any]],
    *,
    source: str,
    url: str,
) -> Any:
    """Parse `body` as JSON of the `expect`ed top-level type, or raise `BadPayloadError`.

    A byte order mark, HTML, an empty or truncated body and the wrong top-level type are all
    refused with a message naming the content type and the first bytes.
    """
    if body.startswith(BOM):
        raise BadPayloadError(
            source,
            "the body starts with a UTF-8 byte order mark, which JSON does not allow "
            f"({describe_body(body, content_type)})",
            url=url,
        )
    if not body.strip():
        raise BadPayloadError(
            source, f"expected JSON, got {describe_body(body, content_type)}", url=url
        )
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadPayloadError(
            source,
            f"the body is not UTF-8 ({exc.reason} at byte {exc.start}; "
            f"{describe_body(body, content_type)})",
            url=url,
        ) from None
    except json.JSONDecodeError as exc:
        ran_out = exc.msg.startswith("Unterminated") or exc.pos >= len(exc.doc.rstrip()) - 1
        opened = body.lstrip()[:1] in (b"[", b"{")
        what = "truncated JSON (it stops mid-value)" if ran_out and opened else "not JSON"
        raise BadPayloadError(
            source,
            f"the body is {what}: {exc.msg} (char {exc.pos}); {describe_body(body, content_type)}",
            url=url,
        ) from None
    if not isinstance(data, expect):
        wanted = "a JSON array" if expect is list else "a JSON object"
        reason = upstream_reason(body, "application/json")
        said = f"; it says {reason!r}" if _message_in(data) else ""
        raise BadPayloadError(source, f"expected {wanted}, got {_shape(data)}{said}", url=url)
    return data


def to_records(items: list[Any], offset: int = 0) -> list[SourceRecord]:
    """The items of a JSON array as SourceRecords; `position` is the index in the array.

    An item that is not an object keeps its JSON text in `raw_text` (with an empty payload),
    so the transform rejects it with a reason instead of the whole answer failing.
    """
    records: list[SourceRecord] = []
    for index, item in enumerate(items, start=offset):
        if isinstance(item, dict):
            records.append(SourceRecord(payload=item, position=index))
        else:
            text = json.dumps(item, ensure_ascii=False)
            records.append(SourceRecord(payload={}, position=index, raw_text=text))
    return records
