"""Health, stats and run history on the real app, over etl_runs rows as the pipeline writes them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

import httpx

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from tests.support.api_data import add_run, ago, load_rows

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


async def test_stats_report_finish_times_and_counts_from_the_table(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    """Per source: the last run's numbers, when the last success and failure *finished*, and
    total_records counted from the table (not summed from runs)."""
    await load_rows(pool, sources=("coingecko",))  # 50 rows
    ok_start, ok_end = ago(hours=3), ago(hours=2, minutes=55)
    bad_start, bad_end = ago(hours=1), ago(minutes=50)
    await add_run(pool, "coingecko", "success", started=ok_start, finished=ok_end, fetched=250)
    await add_run(
        pool, "coingecko", "failed", started=bad_start, finished=bad_end, fetched=7, error="429"
    )
    last_start, last_end = ago(minutes=10), ago(minutes=9, seconds=30)
    await add_run(
        pool,
        "coingecko",
        "success",
        started=last_start,
        finished=last_end,
        fetched=250,
        inserted=40,
    )
    response = await client.get("/api/v1/stats")
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"sources", "total_records", "request_id", "api_latency_ms"}
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["total_records"] == 50
    by_source = {item["source"]: item for item in body["sources"]}
    assert list(by_source) == ["coinpaprika", "coingecko", "csv"]
    gecko = by_source["coingecko"]
    assert gecko["status"] == "success"
    assert gecko["records_processed"] == 250
    assert gecko["inserted"] == 40
    assert abs(gecko["duration_seconds"] - 30) < 0.01
    assert _time(gecko["last_success_timestamp"]) == last_end
    assert _time(gecko["last_failure_timestamp"]) == bad_end
    assert gecko["total_records"] == 50
    paprika = by_source["coinpaprika"]
    assert paprika["status"] == "never_run"
    assert paprika["last_success_timestamp"] is None
    assert paprika["duration_seconds"] is None


async def test_stats_show_a_running_run_and_a_partial_one_as_failure(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    """A run in progress is the last run (duration so far); a partial run counts as a failure."""
    partial_end = ago(minutes=20)
    await add_run(pool, "csv", "partial", started=ago(minutes=21), finished=partial_end)
    await add_run(pool, "csv", "running", started=ago(seconds=5), fetched=3)
    csv = next(
        s for s in (await client.get("/api/v1/stats")).json()["sources"] if s["source"] == "csv"
    )
    assert csv["status"] == "running"
    assert csv["records_processed"] == 3
    assert 4 < csv["duration_seconds"] < 60
    assert _time(csv["last_failure_timestamp"]) == partial_end
    assert csv["last_success_timestamp"] is None


async def test_runs_are_listed_newest_first_filtered_and_paged(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    """GET /api/v1/runs: newest first, filters by source and status, exact total, pages."""
    ids = []
    for minutes, source, status in [
        (50, "csv", "success"),
        (40, "coingecko", "failed"),
        (30, "csv", "failed"),
        (20, "coingecko", "success"),
        (10, "csv", "success"),
    ]:
        ids.append(
            await add_run(
                pool,
                source,
                status,
                started=ago(minutes=minutes),
                finished=ago(minutes=minutes - 1),
            )
        )
    body = (await client.get("/api/v1/runs")).json()
    assert [run["id"] for run in body["runs"]] == ids[::-1]
    assert body["total"] == 5
    csv_ok = (
        await client.get("/api/v1/runs", params={"source": "csv", "status": "success"})
    ).json()
    assert [run["id"] for run in csv_ok["runs"]] == [ids[4], ids[0]]
    assert csv_ok["total"] == 2
    second = (await client.get("/api/v1/runs", params={"page": 2, "page_size": 2})).json()
    assert [run["id"] for run in second["runs"]] == [ids[2], ids[1]]
    bad = await client.get("/api/v1/runs", params={"status": "done"})
    assert bad.status_code == 422


async def test_one_run_shows_its_rejected_records(client: httpx.AsyncClient, pool: Pool) -> None:
    """GET /api/v1/runs/{id}: the run, how many records it rejected, and a sample with reasons."""
    run_id = await add_run(
        pool, "csv", "success", started=ago(minutes=5), finished=ago(minutes=4), rejected=2
    )
    await pool.execute(
        """
        INSERT INTO rejected_records (source, first_run_id, last_run_id, locator, file, line_no,
            raw, reason, raw_hash)
        VALUES ('csv', $1, $1, 'f1:3', 'prices.csv', 3, 'BTC,abc', 'price_usd: not a number', 'h1'),
               ('csv', $1, $1, 'f1:9', 'prices.csv', 9, ',1.0', 'coin_id: missing', 'h2')
        """,
        run_id,
    )
    response = await client.get(f"/api/v1/runs/{run_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == run_id
    assert body["rejected"] == 2
    assert body["rejected_records"]["count"] == 2
    sample = body["rejected_records"]["sample"]
    assert [(r["line_no"], r["reason"], r["raw"]) for r in sample] == [
        (3, "price_usd: not a number", "BTC,abc"),
        (9, "coin_id: missing", ",1.0"),
    ]
    missing = await client.get("/api/v1/runs/999999", headers={"X-Request-ID": "r404"})
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "not_found",
        "detail": "no run with id 999999",
        "request_id": "r404",
    }
    assert (await client.get("/api/v1/runs/0")).status_code == 422
    assert (await client.get("/api/v1/runs/99999999999999999999")).status_code == 422


async def test_health_is_degraded_by_a_failed_last_run(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    """200 degraded naming the source and its error when its last finished run failed."""
    await add_run(pool, "coingecko", "success", started=ago(minutes=3), finished=ago(minutes=2))
    await add_run(
        pool, "csv", "failed", started=ago(minutes=2), finished=ago(minutes=1), error="no such file"
    )
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database_connected"] is True
    assert "csv: last run failed" in body["reason"]
    assert "no such file" in body["reason"]
    assert "coingecko" not in body["reason"]


async def test_health_is_degraded_by_stale_data_but_not_by_a_fresh_start(
    pool: Pool, make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    """Data older than three intervals degrades; a source that never ran does not, yet."""
    settings = make_settings(etl_interval_seconds=60, enabled_sources="coingecko,csv")
    await add_run(pool, "coingecko", "success", started=ago(minutes=5), finished=ago(minutes=4))
    async with make_client(settings) as client:
        body = (await client.get("/api/v1/health")).json()
    assert body["status"] == "degraded"
    assert "coingecko: data is stale" in body["reason"]
    assert "csv" not in body["reason"]
    await add_run(pool, "coingecko", "success", started=ago(seconds=30), finished=ago(seconds=20))
    async with make_client(settings) as client:
        body = (await client.get("/api/v1/health")).json()
        assert (body["status"], body["reason"]) == ("healthy", None)
        client.app.state.started_at = ago(minutes=4)  # type: ignore[attr-defined]
        late = (await client.get("/api/v1/health")).json()
    assert late["status"] == "degraded"
    assert "csv: no data loaded yet" in late["reason"]


async def test_health_ignores_disabled_sources(
    pool: Pool, make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    """A failed source that ENABLED_SOURCES no longer lists does not degrade the service."""
    await add_run(pool, "csv", "failed", started=ago(minutes=2), finished=ago(minutes=1))
    await add_run(pool, "coingecko", "success", started=ago(minutes=2), finished=ago(minutes=1))
    async with make_client(make_settings(enabled_sources="coingecko")) as client:
        body = (await client.get("/api/v1/health")).json()
    assert body["status"] == "healthy"
