"""The asset pages on the real app and database: the same numbers as `/api/v1/assets/{id}`,
one chart line per source built from `/history`, windows, search, escaping, errors."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunStatus, RunTrigger
from cryptoetl.web import format as fmt
from tests.support.html_tree import Element, parse_html

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


def chart_lines(page: Element) -> dict[str, int]:
    """The chart's lines: source -> how many points it was drawn from."""
    return {
        path.attrs["data-source"]: int(path.attrs["data-points"])
        for path in page.all("path", class_="series")
    }


async def test_asset_page_shows_what_the_assets_api_says(
    loaded_fixtures: Settings, make_client: MakeClient
) -> None:
    """Bitcoin after loading the three sources' fixtures: each source's latest price, time,
    market cap and staleness, the median and the spread as /api/v1/assets/bitcoin says; a
    chart line per source with one point per daily bucket of /history for that source."""
    async with make_client(loaded_fixtures) as client:
        response = await client.get("/assets/bitcoin")
        api = (await client.get("/api/v1/assets/bitcoin")).json()
        buckets = {
            source: len(
                (
                    await client.get(
                        "/api/v1/assets/bitcoin/history",
                        params={"interval": "1d", "source": source},
                    )
                ).json()["buckets"]
            )
            for source in ("coingecko", "coinpaprika", "csv")
        }
    assert response.status_code == 200
    page = parse_html(response.text)
    assert page.one("h1").text() == "Bitcoin BTC"
    assert [q["source"] for q in api["sources"]] == ["coingecko", "coinpaprika", "csv"]
    for quote in api["sources"]:
        row = page.one("tr", data_source=quote["source"])
        assert float(row.one("data").attrs["value"]) == quote["price_usd"]
        assert row.one(data_label="market cap").text() == fmt.compact_usd(quote["market_cap"])
        observed = row.one("time").attrs["datetime"]
        assert datetime.fromisoformat(observed) == datetime.fromisoformat(quote["observed_at"])
        assert ("STALE" in row.text()) == quote["stale"]
        assert unquote(row.one("a").attrs["href"]).endswith(
            f"coin_id={quote['coin_id']}&sort=-observed_at&page_size=10"
        )
    spread = api["spread"]
    assert page.one(data_field="median").text() == fmt.usd(spread["median_price"])
    # the fixtures' prices are months apart: only the newest is compared, the others are
    # listed apart as older
    assert (spread["compared"], spread["older"]) == (1, 2)
    assert (
        page.one(data_field="spread")
        .text()
        .startswith("Only one source has a price observed within 15 min of the newest")
    )
    older = [q["source"] for q in api["sources"] if not q["compared"]]
    assert [r.attrs["data-source"] for r in page.all("tr", class_="older")] == older
    assert chart_lines(page) == buckets
    assert buckets["csv"] > 3000  # the daily Kaggle and CoinMarketCap histories
    mapped = [(c["source"], c["coin_id"]) for c in api["coins"]]
    shown = [cell.text() for cell in page.all("td", data_label="coin id")]
    assert shown == [coin_id for _, coin_id in mapped]


def hourly_csv(path: Path, hours: int, start: datetime) -> None:
    lines = ["Name,Symbol,Date,Close"]
    for hour in range(hours):
        moment = start + timedelta(hours=hour)
        lines.append(f"Testcoin,TSTC,{moment:%Y-%m-%dT%H:%M:%SZ},{100 + hour}")
    path.write_text("\n".join(lines) + "\n")


async def test_a_short_history_is_drawn_hour_by_hour_and_windows_cut_it(
    pool: Pool, make_settings: Callable[..., Settings], make_client: MakeClient, tmp_path: Path
) -> None:
    """Two days of hourly prices: "all time" draws hourly closes (48 points); "last 7d"
    draws them too; a window with no data draws nothing and says so."""
    start = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    hourly_csv(tmp_path / "testcoin.csv", 48, start)
    settings = make_settings(enabled_sources="csv", csv_file_path=str(tmp_path / "testcoin.csv"))
    (outcome,) = await Pipeline(settings, pool).run(["csv"], RunTrigger.CLI)
    assert outcome.status is RunStatus.SUCCESS
    async with make_client(settings) as client:
        found = parse_html((await client.get("/assets", params={"q": "tstc"})).text)
        link = found.one("table").one("a").attrs["href"]
        everything = parse_html((await client.get(link)).text)
        week = parse_html((await client.get(link, params={"range": "7d"})).text)
        history = (await client.get(f"/api/v1{link}/history", params={"interval": "1h"})).json()
    assert len(history["buckets"]) == 48
    assert chart_lines(everything) == {"csv": 48}
    assert "hourly closing price" in everything.one("p", class_="caption").text()
    assert chart_lines(week) == {"csv": 48}
    current = week.one("nav", class_="ranges").one("a", aria_current="page")
    assert current.text() == "last 7d"
    await pool.execute("DELETE FROM unified_crypto_data")
    async with make_client(settings) as client:
        empty = parse_html((await client.get(link)).text)
    assert chart_lines(empty) == {}
    assert "No prices to draw yet." in empty.one("div", class_="figure").text()


async def test_asset_search_lists_what_the_api_finds(
    loaded_fixtures: Settings, make_client: MakeClient
) -> None:
    """/assets?q= lists the same assets in the same order as /api/v1/assets?q=, each linking
    to its page; an empty field lists every asset; a control character is a 422 page."""
    async with make_client(loaded_fixtures) as client:
        api = (await client.get("/api/v1/assets", params={"q": "btc", "page_size": 50})).json()
        page = parse_html((await client.get("/assets", params={"q": "btc"})).text)
        every = parse_html((await client.get("/assets?q=")).text)
        all_api = (await client.get("/api/v1/assets")).json()
        bad = await client.get("/assets", params={"q": "btc\x01"})
    links = [row.one("a").attrs["href"] for row in page.one("tbody").all("tr")]
    assert links == [f"/assets/{a['asset_id']}" for a in api["assets"]]
    assert links[0] == "/assets/bitcoin"
    assert page.one(data_field="total").text().startswith(f"{api['total']} assets match")
    assert every.one(data_field="total").text().startswith(f"{all_api['total']:,} assets.")
    assert bad.status_code == 422
    assert "q: must not hold control characters" in bad.text


async def test_unknown_assets_and_bad_windows_answer_html_errors(
    client: httpx.AsyncClient,
) -> None:
    """An unknown asset is a 404 page naming it; an unknown window a 422 page naming `range`."""
    missing = await client.get("/assets/no-such-coin", headers={"X-Request-ID": "a-404"})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "text/html; charset=utf-8"
    page = parse_html(missing.text)
    assert page.one("h1").text() == "Not found HTTP 404"
    assert "No asset has the id 'no-such-coin'." in page.one("section").text()
    assert "a-404" in page.one("section").text()
    bad = await client.get("/assets/bitcoin?range=2y")
    assert bad.status_code == 422
    assert [li.text().split(":")[0] for li in parse_html(bad.text).all("li")] == ["range"]
