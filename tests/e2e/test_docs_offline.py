"""/docs and /redoc in headless Chromium with the network unreachable (loopback only): the
Swagger UI and ReDoc assets come from the service itself, and the operations are rendered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.browser import Page, chromium_missing, launch_browser
from tests.support.process import ServeProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or ""),
]


async def _wait_for(page: Page, expression: str, seconds: float = 20.0) -> object:
    """The value of `expression` once it is truthy (the UIs render after the load event)."""
    async with asyncio.timeout(seconds):
        while True:
            value = await page.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)


async def test_docs_and_redoc_render_operations_offline(
    serve: Callable[..., ServeProcess], db_url: str, tmp_path: Path
) -> None:
    server = serve({"DATABASE_URL": db_url, "ETL_RUN_ON_STARTUP": "false"})
    async with launch_browser(tmp_path, offline=True) as browser:
        page = await browser.new_page(width=1280, height=800)
        # the browser really is offline: a page from elsewhere cannot load
        with pytest.raises(RuntimeError, match="navigation to"):
            await page.goto("https://example.com/")
        page.problems.clear()
        page.requests.clear()

        assert await page.goto(server.base_url + "/docs") == 200
        operations = await _wait_for(
            page,
            "[...document.querySelectorAll('.opblock-summary-path')].map(e => e.textContent)",
        )
        assert isinstance(operations, list)
        assert "/api/v1/data" in [path.replace("\u200b", "") for path in operations]
        foreign = [
            url
            for url in page.requests
            if not url.startswith((server.base_url, "data:", "blob:" + server.base_url))
        ]
        assert foreign == []
        assert page.problems == []
        await page.screenshot(tmp_path / "docs.png", full_page=False)

        page.requests.clear()
        assert await page.goto(server.base_url + "/redoc") == 200
        redoc = await _wait_for(
            page,
            "[...document.querySelectorAll('h2')].map(e => e.textContent.trim())"
            ".filter(t => t.startsWith('Market data'))",
        )
        assert isinstance(redoc, list)
        assert "Market data: filter, sort, page, export" in redoc
        # the sidebar's footer logo, which ReDoc's bundle loads from its CDN, renders after the
        # operations; wait for it, so a request it makes is seen below
        logo = await _wait_for(page, "document.querySelector('img[alt=\"redocly logo\"]')?.src")
        assert isinstance(logo, str)
        assert logo.startswith("data:image/svg+xml")
        foreign = [
            url
            for url in page.requests
            if not url.startswith((server.base_url, "data:", "blob:" + server.base_url))
        ]
        assert foreign == []
