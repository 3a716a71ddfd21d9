"""The pages while the database is away: a 503 page that says so, then recovery.

Uses its own embedded PostgreSQL (never the session's shared server), stopped and restarted
in the middle of the test.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.api_data import app_on_own_server, eventually
from tests.support.html_tree import parse_html


@pytest.mark.slow
async def test_pages_answer_a_503_page_while_the_database_is_down(tmp_path: Path) -> None:
    """Stop PostgreSQL: / and /rejected answer 503 HTML with Retry-After, the reason in
    words, the request id and a self-refresh, never a traceback; start it again: 200."""
    async with app_on_own_server(tmp_path) as own:
        server, client = own.server, own.client
        assert (await client.get("/")).status_code == 200

        await asyncio.to_thread(server.stop)

        async def status_page() -> httpx.Response:
            return await client.get("/", headers={"X-Request-ID": "down-page"})

        down = await eventually(status_page, lambda r: r.status_code == 503)
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert down.headers["content-type"] == "text/html; charset=utf-8"
        assert down.headers["x-request-id"] == "down-page"
        page = parse_html(down.text)
        assert page.one("h1").text() == "The database is unavailable HTTP 503"
        alert = page.one("section").text()
        assert "cannot reach its PostgreSQL database right now" in alert
        assert "down-page" in alert
        assert "Traceback" not in down.text
        refresh = page.one("meta", **{"http_equiv": "refresh"})
        assert refresh.attrs["content"] == "10"
        rejected = await client.get("/rejected")
        assert rejected.status_code == 503
        assert "cannot reach its PostgreSQL database" in rejected.text

        await asyncio.to_thread(server.start)

        back = await eventually(status_page, lambda r: r.status_code == 200, within=20)
        assert back.status_code == 200
        assert (await client.get("/rejected")).status_code == 200
