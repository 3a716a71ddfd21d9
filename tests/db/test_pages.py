"""The status page and the rejected-records page on the real app and database: the same
numbers as the JSON API, the health check's verdicts, escaping, paging, errors as pages."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from cryptoetl.config import Settings
from cryptoetl.db import rejected as rejected_queries
from cryptoetl.db.pool import Pool
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunStatus, RunTrigger
from cryptoetl.web import rejected as rejected_page
from tests.support.api_data import add_run, ago
from tests.support.dashboard_data import CSV_REJECTED
from tests.support.html_tree import Element, parse_html

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


def times(element: Element) -> list[datetime]:
    return [datetime.fromisoformat(t.attrs["datetime"]) for t in element.all("time")]


def moment(text: str | None) -> list[datetime]:
    return [] if text is None else [datetime.fromisoformat(text)]


async def test_status_page_shows_what_the_stats_api_says(
    loaded_fixtures: Settings, make_client: MakeClient, pool: Pool
) -> None:
    """After loading the three sources' fixtures: every source's records, last run, last
    success and last failure (with its error), and the totals, as /api/v1/stats, /runs and
    /rejected report them; the failed source is FAILED and named in the banner."""
    async with make_client(loaded_fixtures) as client:
        response = await client.get("/")
        stats = (await client.get("/api/v1/stats")).json()
        runs = (await client.get("/api/v1/runs")).json()
        rejected = (await client.get("/api/v1/rejected")).json()
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = parse_html(response.text)
    rows = await pool.fetchval("SELECT count(*) FROM unified_crypto_data")
    assert stats["total_records"] == rows
    assert page.one(data_field="total-records").text() == f"{rows:,} records in the table"
    assert page.one(data_field="runs").text() == f"{runs['total']} runs recorded"
    assert rejected["total"] == CSV_REJECTED
    assert page.one(data_field="rejected").text() == f"{CSV_REJECTED:,} rejected records"
    for item in stats["sources"]:
        card = page.one(id=f"source-{item['source']}")
        assert card.one(data_field="records").text() == f"{item['total_records']:,} in the table"
        last_run = card.one(data_field="last-run")
        assert last_run.one("a").text() == f"#{item['last_run_id']}"
        assert last_run.one("span", class_="status").text() == item["status"]
        assert last_run.one("data").attrs["value"] == str(item["records_processed"])
        assert times(card.one(data_field="last-success")) == moment(item["last_success_timestamp"])
        failure = card.one(data_field="last-failure")
        assert times(failure) == moment(item["last_failure_timestamp"])
        if item["last_failure_error"]:
            assert failure.one(class_="error").text() == item["last_failure_error"]
    badges = {
        card.one("h3").text(): card.one(class_="badge").text() for card in page.all("article")
    }
    assert badges == {"coinpaprika": "FAILED", "coingecko": "OK", "csv": "OK"}
    banner = page.one("section", class_="banner")
    assert banner.one("h1").text() == "Degraded: 1 of 3 enabled sources need attention"
    assert [li.one("strong").text() for li in banner.all("li")] == ["coinpaprika"]
    # the banner says what is wrong; the error itself is stated once, on the card
    assert "gave up after" not in banner.text()
    assert "last run failed" in banner.text()
    card = next(c for c in page.all("article") if c.one("h3").text() == "coinpaprika")
    error = card.one(data_field="last-failure").one(class_="error").text()
    assert error.startswith("gave up after 2 attempts: HTTP 503")
    assert "?" not in error  # the URL without its query string


async def test_verdicts_follow_the_health_rules(
    pool: Pool, make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    """Stale data, a partial last run and a disabled source read as /api/v1/health judges
    them; a run in progress is shown beside the verdict; fresh data is OK."""
    settings = make_settings(etl_interval_seconds=60, enabled_sources="coingecko,coinpaprika")
    await add_run(pool, "coingecko", "success", started=ago(minutes=11), finished=ago(minutes=10))
    await add_run(pool, "coingecko", "running", started=ago(seconds=2))
    await add_run(
        pool,
        "coinpaprika",
        "partial",
        started=ago(seconds=40),
        finished=ago(seconds=30),
        rejected=3,
        error="3 records were rejected",
    )
    await add_run(pool, "csv", "failed", started=ago(minutes=2), finished=ago(minutes=1))
    async with make_client(settings) as client:
        health = (await client.get("/api/v1/health")).json()
        page = parse_html((await client.get("/")).text)
    assert health["status"] == "degraded"
    named = sorted(problem.split(":")[0] for problem in health["reason"].split("; "))
    banner = page.one("section", class_="banner")
    assert sorted(li.one("strong").text() for li in banner.all("li")) == named
    assert named == ["coingecko", "coinpaprika"]
    cards = {card.one("h3").text(): card for card in page.all("article")}
    gecko = [badge.text() for badge in cards["coingecko"].all(class_="badge")]
    assert gecko == ["STALE", "RUNNING NOW"]
    assert (
        cards["coingecko"]
        .one("p", class_="problem")
        .text()
        .startswith("data is stale: last loaded 10 min ago, more than 3 min ago")
    )
    assert cards["coinpaprika"].one(class_="badge").text() == "PARTIAL"
    # the error is stated once, on the card, not again in the banner
    assert "3 records were rejected" not in banner.text()
    assert cards["coinpaprika"].text().count("3 records were rejected") == 1
    assert cards["csv"].one(class_="badge").text() == "DISABLED"

    await add_run(pool, "coinpaprika", "success", started=ago(seconds=9), finished=ago(seconds=8))
    async with make_client(settings) as client:
        page = parse_html((await client.get("/")).text)
    cards = {card.one("h3").text(): card for card in page.all("article")}
    assert cards["coinpaprika"].one(class_="badge").text() == "OK"
    assert page.one("section", class_="banner").one("h1").text().startswith("Degraded: 1 of 2")


async def test_last_failure_error_is_that_of_the_latest_failed_or_partial_run(
    pool: Pool, client: httpx.AsyncClient
) -> None:
    """A failed run then a later partial one: the last failure is the partial's, with its
    error, even after a success."""
    await add_run(pool, "csv", "failed", started=ago(minutes=9), finished=ago(minutes=8), error="A")
    await add_run(
        pool, "csv", "partial", started=ago(minutes=7), finished=ago(minutes=6), error="B"
    )
    await add_run(pool, "csv", "success", started=ago(minutes=5), finished=ago(minutes=4))
    csv = (await client.get("/api/v1/stats")).json()["sources"][2]
    assert (csv["source"], csv["last_failure_error"], csv["error"]) == ("csv", "B", None)
    card = parse_html((await client.get("/")).text).one(id="source-csv")
    assert card.one(data_field="last-failure").one(class_="error").text() == "B"


async def test_pages_escape_what_sources_send(
    pool: Pool, make_settings: Callable[..., Settings], make_client: MakeClient, tmp_path: Path
) -> None:
    """A CSV whose coin names, bad values and file name are markup, loaded by the real
    pipeline, and a run error that is markup: shown as text on the status, rejected, asset
    search and asset pages, never as markup."""
    hostile = tmp_path / "x<i>.csv"
    hostile.write_text(
        "Name,Symbol,Date,Close\n"
        "<script>alert(1)</script>,XSS,2024-01-01,1.5\n"
        '"<img src=x onerror=alert(2)>",BAD,2024-01-02,<b>n/a</b>\n'
    )
    settings = make_settings(enabled_sources="csv", csv_file_path=str(hostile))
    (outcome,) = await Pipeline(settings, pool).run(["csv"], RunTrigger.CLI)
    assert outcome.status is RunStatus.PARTIAL
    await add_run(
        pool, "coingecko", "failed", started=ago(minutes=1), finished=ago(seconds=5),
        error='upstream said <script>alert("e")</script>',
    )  # fmt: skip
    async with make_client(settings) as client:
        status_page = await client.get("/")
        rejected = await client.get("/rejected")
        found = await client.get("/assets", params={"q": "xss"})
        link = parse_html(found.text).one("tbody").one("a").attrs["href"]
        asset = await client.get(link)
    assert parse_html(asset.text).one("h1").text() == "<script>alert(1)</script> XSS"
    for response in (status_page, rejected, found, asset):
        assert response.status_code == 200
        assert "<script" not in response.text
        assert "<img" not in response.text
        assert "<i>" not in response.text
        assert "<b>" not in response.text
    assert "upstream said &lt;script&gt;alert(&#34;e&#34;)&lt;/script&gt;" in status_page.text
    page = parse_html(rejected.text)
    assert (
        page.one("td", class_="raw").text()
        == '"<img src=x onerror=alert(2)>",BAD,2024-01-02,<b>n/a</b>'
    )
    assert page.one("tr", class_="file").text().startswith("x<i>.csv")


async def insert_rejected(pool: Pool, run_id: int, source: str, count: int) -> list[int]:
    ids = []
    for line in range(2, count + 2):
        ids.append(
            await pool.fetchval(
                """
                INSERT INTO rejected_records (source, first_run_id, last_run_id, locator, file,
                    line_no, raw, reason, raw_hash)
                VALUES ($1, $2, $2, $3, 'prices.csv', $4, 'BTC,abc', 'price: not a number', $3)
                RETURNING id
                """,
                source,
                run_id,
                f"{run_id}:{line}",
                line,
            )
        )
    return ids


@pytest.fixture
async def three_runs(pool: Pool) -> dict[str, list[int]]:
    """Rejected records of three runs: old csv (5), coingecko (3), newest csv (2)."""
    old = await add_run(pool, "csv", "partial", started=ago(hours=3), finished=ago(hours=3))
    gecko = await add_run(pool, "coingecko", "partial", started=ago(hours=2), finished=ago(hours=2))
    new = await add_run(pool, "csv", "partial", started=ago(hours=1), finished=ago(hours=1))
    # stored out of run order, as re-sightings do
    old_ids = await insert_rejected(pool, old, "csv", 5)
    new_ids = await insert_rejected(pool, new, "csv", 2)
    gecko_ids = await insert_rejected(pool, gecko, "coingecko", 3)
    return {"old": old_ids, "gecko": gecko_ids, "new": new_ids, "runs": [old, gecko, new]}


async def test_rejected_api_pages_by_run_then_storage_order(
    client: httpx.AsyncClient, three_runs: dict[str, list[int]]
) -> None:
    """Newest run first, in storage order within a run; a cursor walk crosses runs without
    losing or repeating a record; filters by source and run; the exact total."""
    expected = three_runs["new"] + three_runs["gecko"] + three_runs["old"]
    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, str | int] = {"page_size": 4}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/api/v1/rejected", params=params)).json()
        assert body["total"] == 10
        seen += [record["id"] for record in body["rejected"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (expected, 3)
    first = (await client.get("/api/v1/rejected", params={"page_size": 1})).json()["rejected"][0]
    assert first["source"] == "csv"
    assert first["last_run_id"] == three_runs["runs"][2]
    assert (first["file"], first["line_no"], first["raw"]) == ("prices.csv", 2, "BTC,abc")
    csv = (await client.get("/api/v1/rejected", params={"source": "csv"})).json()
    assert [r["id"] for r in csv["rejected"]] == three_runs["new"] + three_runs["old"]
    assert csv["total"] == 7
    one_run = (
        await client.get("/api/v1/rejected", params={"run_id": three_runs["runs"][1]})
    ).json()
    assert [r["id"] for r in one_run["rejected"]] == three_runs["gecko"]


@pytest.mark.parametrize(
    "query",
    ["cursor=abc", "cursor=1.99999999999999999999", "cursor=0.5", "source=nope", "run_id=0"],
)
async def test_rejected_api_refuses_bad_parameters(client: httpx.AsyncClient, query: str) -> None:
    """A cursor it did not issue, an unknown source, a run id out of range: 422 naming it."""
    response = await client.get(f"/api/v1/rejected?{query}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", query.split("=")[0]]


async def test_rejected_page_walks_the_same_order_with_next_links(
    client: httpx.AsyncClient, three_runs: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Following "Next page" shows every record once, grouped under its run, in the API's
    order; the filter form's empty fields mean "all"."""
    monkeypatch.setattr(rejected_page, "PAGE_SIZE", 4)
    url, ids, runs, headings = "/rejected?source=&run_id=", [], [], []
    while url:
        response = await client.get(url)
        assert response.status_code == 200
        page = parse_html(response.text)
        headings.append(page.one(data_field="total").text())
        ids += [int(row.attrs["data-id"]) for row in page.all("tr") if "data-id" in row.attrs]
        runs += [int(h.attrs["data-run"]) for h in page.all("h2", class_="run-group")]
        nav = page.one("nav", class_="pager")
        url = next((a.attrs["href"] for a in nav.all("a") if "Next" in a.text()), "")
    assert ids == three_runs["new"] + three_runs["gecko"] + three_runs["old"]
    new, gecko, old = three_runs["runs"][2], three_runs["runs"][1], three_runs["runs"][0]
    assert runs == [new, gecko, gecko, old, old]  # a run split by a page break heads both
    assert headings == [
        "10 rejected records. Showing 1\u20134 (page 1).",
        "10 rejected records. Showing 5\u20138 (page 2).",
        "10 rejected records. Showing 9\u201310 (page 3).",
    ]
    only_old = parse_html((await client.get(f"/rejected?run_id={old}")).text)
    assert (
        only_old.one(data_field="total")
        .text()
        .startswith(f"5 rejected records last met by run #{old}")
    )


async def test_counts_past_the_cap_say_more_than(
    client: httpx.AsyncClient, three_runs: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the count cap the API's total is null and the pages say "more than N"."""
    monkeypatch.setattr(rejected_queries, "COUNT_CAP", 6)
    assert (await client.get("/api/v1/rejected")).json()["total"] is None
    assert (await client.get("/api/v1/rejected?source=coingecko")).json()["total"] == 3
    rejected = parse_html((await client.get("/rejected")).text)
    assert rejected.one(data_field="total").text().startswith("More than 6 rejected records")
    status = parse_html((await client.get("/")).text)
    assert status.one(data_field="rejected").text() == "more than 6 rejected records"


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("run_id=abc", "run_id"),
        ("source=nope", "source"),
        ("cursor=x", "cursor"),
        ("page=0", "page"),
    ],
)
async def test_bad_page_parameters_answer_an_html_422(
    client: httpx.AsyncClient, query: str, named: str
) -> None:
    """A bad filter is a page naming it, with the request id: no JSON, no traceback."""
    response = await client.get(f"/rejected?{query}", headers={"X-Request-ID": "bad-1"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-request-id"] == "bad-1"
    page = parse_html(response.text)
    assert page.one("h1").text() == "Invalid parameters HTTP 422"
    assert [li.text().split(":")[0] for li in page.all("li")] == [named]
    assert "bad-1" in page.one("section").text()


async def test_pages_carry_the_request_id_and_allow_no_script(client: httpx.AsyncClient) -> None:
    """Every page echoes X-Request-ID and shows it; its Content-Security-Policy allows no
    script and exactly the page's own style block; no script tag is sent."""
    for path in ("/", "/rejected"):
        response = await client.get(path, headers={"X-Request-ID": "page-42"})
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "page-42"
        assert "page-42" in parse_html(response.text).one("footer").text()
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src" not in policy  # so default-src 'none' forbids every script
        style = re.search(r"<style>(.*?)</style>", response.text, re.S)
        assert style is not None
        digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
        assert f"style-src 'sha256-{digest}'" in policy
        assert "<script" not in response.text
        assert "style=" not in response.text  # inline style attributes would be refused
