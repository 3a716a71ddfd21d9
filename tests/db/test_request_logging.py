"""Every log line written while a request is handled carries its request id."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import structlog

from cryptoetl.config import Settings
from cryptoetl.log import configure_logging

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def test_log_lines_of_a_request_carry_its_id(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    """The access line (method, path, status, duration) carries the id the response carries,
    the client's own or a new UUID; a line logged after the request has none."""
    stream = io.StringIO()
    configure_logging("INFO", "json", [], stream=stream)
    async with make_client(make_settings()) as client:
        await client.get("/api/v1/data", headers={"X-Request-ID": "trace-me-1"})
        await client.get("/api/v1/runs/0")
    structlog.get_logger("after").info("outside")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["event"] == "request"]
    first = access[0]
    assert (first["request_id"], first["path"], first["status"]) == (
        "trace-me-1",
        "/api/v1/data",
        200,
    )
    assert access[1]["status"] == 422
    assert len(access[1]["request_id"]) == 36
    assert isinstance(first["duration_ms"], float)
    assert "request_id" not in lines[-1]


def test_direct_access_line_matches_a_structlog_line() -> None:
    """The fast JSON access writer renders the same fields a structlog event would, masked."""
    from cryptoetl.log import access_writer

    stream = io.StringIO()
    configure_logging("INFO", "json", ["hidden-token-1"], stream=stream)
    write = access_writer()
    assert write is not None
    write("rid-1", "GET", "/x/hidden-token-1", 200, 1.5)
    structlog.get_logger("cryptoetl.access").info(
        "request", method="GET", path="/x/hidden-token-1", status=200, duration_ms=1.5
    )
    direct, logged = (json.loads(line) for line in stream.getvalue().splitlines())
    assert direct.pop("request_id") == "rid-1"
    assert set(direct) == set(logged)
    assert direct.pop("timestamp").endswith("Z")
    assert logged.pop("timestamp").endswith("Z")
    assert direct == logged
    assert direct["path"] == "/x/***"


def test_no_direct_writer_for_console_or_quiet_logs() -> None:
    """Console lines and LOG_LEVEL above INFO keep the structlog path (or none)."""
    from cryptoetl.log import access_writer

    configure_logging("INFO", "console", [], stream=io.StringIO())
    assert access_writer() is None
    configure_logging("WARNING", "json", [], stream=io.StringIO())
    assert access_writer() is None
