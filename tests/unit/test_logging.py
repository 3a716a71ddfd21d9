"""Logging: JSON lines off a terminal, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging

import structlog

from cryptoetl.log import configure_logging


def test_json_lines_with_secrets_masked() -> None:
    """Keys, tokens and database passwords are masked in our events and in stdlib records."""
    stream = io.StringIO()
    configure_logging("INFO", None, ["cg-secret-key", "admintok99"], stream=stream)
    log = structlog.get_logger("test")
    log.info("fetching", url="https://x/?key=cg-secret-key", api_key="anything", note="ok")
    logging.getLogger("uvicorn.error").warning(
        "cannot reach postgresql://app:dbpw@host:5432/db with Bearer admintok99"
    )
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["event"] == "fetching"
    assert first["url"] == "https://x/?key=***"
    assert first["api_key"] == "***"
    assert first["note"] == "ok"
    assert first["level"] == "info"
    assert second["logger"] == "uvicorn.error"
    assert second["event"] == "cannot reach postgresql://app:***@host:5432/db with Bearer ***"
    output = stream.getvalue()
    for secret in ("cg-secret-key", "admintok99", "dbpw"):
        assert secret not in output


def test_console_format_when_asked() -> None:
    """LOG_FORMAT=console gives readable lines, not JSON."""
    stream = io.StringIO()
    configure_logging("INFO", "console", [], stream=stream)
    structlog.get_logger("test").info("hello", n=1)
    line = stream.getvalue().strip()
    assert "hello" in line
    assert "n=1" in line
    assert not line.startswith("{")
