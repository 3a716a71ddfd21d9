"""The pages in a real browser: headless Chromium against a real `cryptoetl serve` subprocess
on a database loaded with the three sources' fixtures through the real pipeline.

Each page is loaded at 1280x800 and at a phone's 390x844: it must answer 200, log no console
error, fetch nothing but itself (no script, font or image from anywhere), lay out without
horizontal scrolling, and draw what it promises; a full-page screenshot of each is saved under
the test's temporary directory (and copied to `$DASHBOARD_SCREENSHOTS`, when set, which is how
`docs/screenshots/` is made).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cryptoetl.config import Settings
from tests.support.browser import Page, chromium_missing, launch_browser
from tests.support.process import ServeProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or ""),
]

VIEWPORTS = {"desktop": (1280, 800, False), "phone": (390, 844, True)}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def visit(
    page: Page, base_url: str, path: str, shot: Path, *, full_page: bool = True
) -> None:
    """Load `path`; assert 200, no console error, nothing fetched from elsewhere, no sideways
    scrolling; save a screenshot at `shot` (the whole page, or the first screen)."""
    status = await page.goto(base_url + path)
    assert status == 200, path
    assert page.problems == [], (path, page.problems)
    foreign = [url for url in page.requests if not url.startswith((base_url, "data:"))]
    assert foreign == [], (path, foreign)
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{path} scrolls sideways by {overflow} px"
    await page.screenshot(shot, full_page=full_page)
    assert (await asyncio.to_thread(shot.read_bytes))[:8] == PNG_SIGNATURE
    page.problems.clear()
    page.requests.clear()


async def test_pages_render_in_chromium_without_errors(
    serve: Callable[..., ServeProcess], loaded_fixtures: Settings, db_url: str, tmp_path: Path
) -> None:
    """/, /rejected, /assets/bitcoin and /assets in headless Chromium, desktop and phone:
    200, no console error, nothing fetched from elsewhere, every source's state and the run
    timeline drawn, one chart line per source."""
    server = serve({"DATABASE_URL": db_url, "ETL_RUN_ON_STARTUP": "false"})
    shots = tmp_path / "screenshots"
    shots.mkdir()
    async with launch_browser(tmp_path) as browser:
        for name, (width, height, mobile) in VIEWPORTS.items():
            page = await browser.new_page(width=width, height=height, mobile=mobile)
            await visit(page, server.base_url, "/", shots / f"status-{name}.png")
            badges = await page.evaluate(
                "[...document.querySelectorAll('.card')].map("
                "c => [c.querySelector('h3').textContent, c.querySelector('.badge').textContent])"
            )
            assert badges == [["coinpaprika", "FAILED"], ["coingecko", "OK"], ["csv", "OK"]]
            bars = await page.evaluate("document.querySelectorAll('svg.timeline rect.run').length")
            assert bars == 6  # two runs of three sources
            shot = shots / f"rejected-{name}.png"
            await visit(page, server.base_url, "/rejected", shot, full_page=False)
            lines = await page.evaluate("document.querySelectorAll('table.rejected td.raw').length")
            assert lines == 50  # the first page
            await visit(page, server.base_url, "/assets/bitcoin", shots / f"asset-{name}.png")
            lines = await page.evaluate(
                "[...document.querySelectorAll('svg.chart path.series')].map(p => p.dataset.source)"
            )
            assert lines == ["coingecko", "coinpaprika", "csv"]  # one line per source
            legend = await page.evaluate(
                "[...document.querySelectorAll('svg.chart text.legend')].map(t => t.textContent)"
            )
            assert legend == ["coingecko", "coinpaprika", "csv", "log price scale"]
            await visit(page, server.base_url, "/assets?q=btc", shots / f"assets-{name}.png")
            found = await page.evaluate("document.querySelectorAll('table.assets tbody tr').length")
            assert found >= 1
    target = os.environ.get("DASHBOARD_SCREENSHOTS")
    if target:
        for shot in shots.iterdir():
            shutil.copy(shot, Path(target) / shot.name)
