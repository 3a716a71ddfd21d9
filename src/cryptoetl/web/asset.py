"""GET /assets (find an asset) and GET /assets/{asset_id} (one asset across sources).

Read through `cryptoetl.db.assets`, the functions behind `/api/v1/assets`,
`/api/v1/assets/{asset_id}` and its `/history`: the latest observation per source and the
spread are `get_asset`'s, the chart's lines are `asset_history` per source (bucket closes).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from markupsafe import Markup
from starlette.responses import HTMLResponse

from cryptoetl.api.deps import ReadPoolDep, SettingsDep
from cryptoetl.api.freshness import stale_after_seconds
from cryptoetl.api.params import AssetIdParam, validation_error
from cryptoetl.db import assets as asset_queries
from cryptoetl.db.assets import AssetView
from cryptoetl.db.replica import ReadPool
from cryptoetl.web import format as fmt
from cryptoetl.web.chart import Series, line_chart
from cryptoetl.web.render import Pages
from cryptoetl.web.routing import DATABASE_WAIT, PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SEARCH_PAGE_SIZE = 50
HOURLY_UP_TO = timedelta(days=30)  # "all" history shorter than this is drawn hour by hour
Range = Literal["all", "1y", "30d", "7d"]
RANGES: dict[str, tuple[timedelta | None, str]] = {
    "all": (None, "all"),
    "1y": (timedelta(days=365), "1d"),
    "30d": (timedelta(days=30), "1h"),
    "7d": (timedelta(days=7), "1h"),
}


# The search form's field: empty means "every asset"; control characters are refused.
SearchText = Annotated[str | None, Query(max_length=200)]


def _search_text(value: str | None) -> str | None:
    value = (value or "").strip()
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise validation_error((("query", "q"), "must not hold control characters"))
    return value or None


@dataclass(frozen=True, slots=True)
class Chart:
    svg: Markup
    interval: str
    since: datetime | None
    drawn: tuple[str, ...]  # the sources with a line


async def _lines(
    pool: ReadPool, asset_id: str, sources: list[str], interval: str, since: datetime | None
) -> list[Series]:
    """Each source's bucket closes: one `asset_history` call per source, all at once on
    connections of their own (each reads its own index range; together they take about as
    long as the longest)."""

    async def line(source: str) -> Series:
        async with pool.acquire(timeout=DATABASE_WAIT) as conn:
            history = await asset_queries.asset_history(
                conn, asset_id, interval=interval, since=since, source=source
            )
        return Series(source, [(b.start, b.close) for b in history.buckets])

    return list(await asyncio.gather(*(line(source) for source in sources)))


async def _chart(pool: ReadPool, view: AssetView, window: Range, now: datetime) -> Chart:
    """One line per mapped source over the chosen window; for "all", daily buckets, or hourly
    ones when the whole history is shorter than `HOURLY_UP_TO`."""
    length, interval = RANGES[window]
    since = now - length if length is not None else None
    sources = sorted({coin.source for coin in view.coins})
    if interval == "all":
        async with pool.acquire(timeout=DATABASE_WAIT) as conn:
            days = await asset_queries.history_days(conn, view.asset_id)
        interval = "1h" if days is not None and days <= HOURLY_UP_TO else "1d"
    series = await _lines(pool, view.asset_id, sources, interval, since)
    every = "hourly" if interval == "1h" else "daily"
    label = f"{view.name} ({view.symbol}) price in USD, {every} closes per source (UTC)"
    empty = "No prices to draw yet."
    if since is not None and view.sources:
        # older prices exist: say so, rather than "yet"
        newest = max(q.observed_at for q in view.sources)
        empty = (
            f"No prices in this range: the newest is from {fmt.utc(newest)}; "
            "choose \u201call time\u201d to see them."
        )
    svg = Markup(line_chart(series, label=label, empty=empty))  # noqa: S704 - escaped there
    drawn = tuple(s.name for s in series if s.points)
    return Chart(svg, interval, since, drawn)


@router.get("/assets/{asset_id}", response_class=HTMLResponse)
async def asset_page(
    request: Request,
    pool: ReadPoolDep,
    settings: SettingsDep,
    asset_id: AssetIdParam,
    range_: Annotated[Range, Query(alias="range")] = "all",
) -> HTMLResponse:
    now = datetime.now(UTC)
    stale_after = stale_after_seconds(settings.etl_interval_seconds)
    async with pool.acquire(timeout=DATABASE_WAIT) as conn:
        view = await asset_queries.get_asset(conn, asset_id, stale_after_seconds=stale_after)
    if view is None:
        raise HTTPException(404, f"No asset has the id {asset_id!r}.")
    chart = await _chart(pool, view, range_, now)
    context = {
        "title": f"{view.name} ({view.symbol})",
        "now": now,
        "asset": view,
        "chart": chart,
        "window": range_,
        "ranges": list(RANGES),
        "stale_after": stale_after,
    }
    pages: Pages = request.app.state.pages
    return pages.render(request, "asset.html", context)


@router.get("/assets", response_class=HTMLResponse)
async def assets_page(
    request: Request,
    pool: ReadPoolDep,
    settings: SettingsDep,
    q: SearchText = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    query = _search_text(q)
    async with pool.acquire(timeout=DATABASE_WAIT) as conn:
        total, views = await asset_queries.search_assets(
            conn,
            query=query,
            limit=SEARCH_PAGE_SIZE,
            offset=(page - 1) * SEARCH_PAGE_SIZE,
            stale_after_seconds=stale_after_seconds(settings.etl_interval_seconds),
        )
    context = {
        "title": "Assets",
        "q": query,
        "assets": views,
        "total": total,
        "page": page,
        "first": (page - 1) * SEARCH_PAGE_SIZE + 1,
        "more": page * SEARCH_PAGE_SIZE < total,
    }
    pages: Pages = request.app.state.pages
    return pages.render(request, "assets.html", context)
