"""GET /metrics: Prometheus text from a per-app registry; the ETL view read from the database."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.metrics import Metrics
from cryptoetl.sources.base import SourceEvents
from tests.support.api_data import add_run, ago, load_rows

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def test_requests_are_counted_by_route_template_and_status(client: httpx.AsyncClient) -> None:
    """Counts and latency per route template (not per concrete path), status and method."""
    for _ in range(3):
        await client.get("/api/v1/data")
    await client.get("/api/v1/data", params={"page": 0})
    await client.get("/api/v1/runs/12345")
    await client.get("/no/such/path")
    await client.request("FROBNICATE", "/api/v1/data")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    count = "cryptoetl_http_requests_total"
    assert value(found, count, method="GET", route="/api/v1/data", status="200") == 3
    assert value(found, count, method="GET", route="/api/v1/data", status="422") == 1
    assert value(found, count, method="GET", route="/api/v1/runs/{run_id}", status="404") == 1
    assert value(found, count, method="GET", route="unmatched", status="404") == 1
    assert value(found, count, method="OTHER", route="/api/v1/data", status="405") == 1
    histogram = "cryptoetl_http_request_duration_seconds_count"
    assert value(found, histogram, method="GET", route="/api/v1/data", status="200") == 3


async def test_etl_figures_come_from_the_database(client: httpx.AsyncClient, pool: Pool) -> None:
    """Runs by source and outcome, records by outcome, last success time and rows per source."""
    await load_rows(pool, sources=("csv",))
    finished = ago(minutes=1)
    await add_run(
        pool,
        "csv",
        "success",
        started=ago(minutes=9),
        finished=ago(minutes=8),
        fetched=10,
        inserted=10,
    )
    await add_run(
        pool, "csv", "success", started=ago(minutes=2), finished=finished, fetched=5, inserted=2
    )
    await add_run(
        pool, "csv", "failed", started=ago(minutes=5), finished=ago(minutes=4), rejected=3
    )
    await add_run(pool, "coingecko", "running", started=ago(seconds=3))
    found = samples((await client.get("/metrics")).text)
    assert value(found, "cryptoetl_database_up") == 1
    assert value(found, "cryptoetl_etl_runs_total", source="csv", status="success") == 2
    assert value(found, "cryptoetl_etl_runs_total", source="csv", status="failed") == 1
    assert value(found, "cryptoetl_etl_runs_running", source="coingecko") == 1
    assert value(found, "cryptoetl_etl_records_total", source="csv", outcome="fetched") == 15
    assert value(found, "cryptoetl_etl_records_total", source="csv", outcome="inserted") == 12
    assert value(found, "cryptoetl_etl_records_total", source="csv", outcome="rejected") == 3
    last = value(found, "cryptoetl_etl_last_success_timestamp_seconds", source="csv")
    assert abs(last - finished.timestamp()) < 0.001
    assert value(found, "cryptoetl_unified_rows", source="csv") == 50
    assert value(found, "cryptoetl_unified_rows", source="coingecko") == 0


async def test_source_events_are_exposed_per_app(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    """The app's Metrics is the pipeline's SourceEvents; two apps never share counts."""
    async with make_client(make_settings()) as first, make_client(make_settings()) as second:
        events: SourceEvents = first.app.state.metrics  # type: ignore[attr-defined]
        events.rate_limit_wait("coingecko", 1.5)
        events.rate_limit_wait("coingecko", 0.5)
        events.retry("coingecko", "429", 2.0)
        events.request("coingecko", 200, 0.2)
        events.request("coingecko", None, 10.0)
        found = samples((await first.get("/metrics")).text)
        other = samples((await second.get("/metrics")).text)
    assert value(found, "cryptoetl_source_rate_limit_waits_total", source="coingecko") == 2
    assert value(found, "cryptoetl_source_rate_limit_wait_seconds_total", source="coingecko") == 2.0
    assert value(found, "cryptoetl_source_retries_total", source="coingecko", reason="429") == 1
    assert value(found, "cryptoetl_source_requests_total", source="coingecko", status="200") == 1
    assert value(found, "cryptoetl_source_requests_total", source="coingecko", status="none") == 1
    assert (
        "cryptoetl_source_retries_total",
        (("reason", "429"), ("source", "coingecko")),
    ) not in other


def test_render_without_database_still_answers() -> None:
    """With no database snapshot the exposition says so and keeps the process metrics."""
    body, content_type = Metrics().render(None)
    found = samples(body.decode())
    assert value(found, "cryptoetl_database_up") == 0
    assert not any(name.startswith("cryptoetl_etl_") for name, _ in found)
    assert content_type.startswith("text/plain")
