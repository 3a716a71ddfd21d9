"""The pipeline against the real database: idempotent loads, lineage, outcomes, resume."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import structlog
import structlog.testing

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.errors import UpstreamRejectedError
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunStatus, RunTrigger, SourceOutcome
from tests.support.pipeline_fakes import FakeFeed, coin, pages, registry
from tests.support.raw_pages import RAW_RECORDS, raw_records_of

# what is counted: the HTTP sources' raw records (in pages), per source, and the other tables
DATA_TABLES = {
    "raw_coingecko": raw_records_of("coingecko"),
    "raw_coinpaprika": raw_records_of("coinpaprika"),
    "unified_crypto_data": "unified_crypto_data",
    "rejected_records": "rejected_records",
}


async def table_counts(pool: Pool) -> dict[str, int]:
    return {
        name: await pool.fetchval(f"SELECT count(*) FROM {rows}")  # noqa: S608
        for name, rows in DATA_TABLES.items()
    }


def by_source(outcomes: list[SourceOutcome]) -> dict[str, SourceOutcome]:
    return {outcome.source: outcome for outcome in outcomes}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(enabled_sources="coingecko,coinpaprika")


async def test_second_run_over_same_data_changes_no_row_count(
    settings: Settings, pool: Pool
) -> None:
    """Re-running over identical upstream data adds no row anywhere and reports unchanged."""
    gecko_pages = pages(2, 3)
    gecko_pages[1].append({"id": "broken", "last_updated": "2025-02-09T17:00:00+00:00"})
    feeds = registry(coingecko=FakeFeed(gecko_pages), coinpaprika=FakeFeed(pages(1, 4)))
    pipeline = Pipeline(settings, pool, registry=feeds)

    first = by_source(await pipeline.run(None, RunTrigger.CLI))
    assert first["coingecko"].status is RunStatus.PARTIAL
    assert first["coingecko"].error == "1 record was rejected"
    assert (first["coingecko"].counts.fetched, first["coingecko"].counts.inserted) == (7, 6)
    assert first["coinpaprika"].status is RunStatus.SUCCESS
    assert first["coinpaprika"].counts.inserted == 4
    after_first = await table_counts(pool)
    assert after_first == {
        "raw_coingecko": 6,
        "raw_coinpaprika": 4,
        "unified_crypto_data": 10,
        "rejected_records": 1,
    }

    # the first run read every page, so its cursor ended the cycle: the second starts at page 1
    second = by_source(await pipeline.run(None, RunTrigger.CLI))
    assert await table_counts(pool) == after_first
    gecko = second["coingecko"].counts
    assert (gecko.fetched, gecko.inserted, gecko.updated, gecko.unchanged, gecko.rejected) == (
        7,
        0,
        0,
        6,
        1,
    )
    assert second["coinpaprika"].counts.unchanged == 4
    assert second["coinpaprika"].status is RunStatus.SUCCESS
    seen = await pool.fetchrow(
        "SELECT seen_count, first_run_id, last_run_id, reason FROM rejected_records"
    )
    assert seen is not None
    assert seen["seen_count"] == 2
    assert seen["first_run_id"] == first["coingecko"].run_id
    assert seen["last_run_id"] == second["coingecko"].run_id
    assert seen["reason"] == "price: missing"
    stats = await pool.fetchval("SELECT row_count FROM source_stats WHERE source = 'coingecko'")
    assert stats == 6


async def test_changed_values_are_counted_as_updated_and_rewritten(
    settings: Settings, pool: Pool
) -> None:
    """A value that changed for the same observation rewrites the row; the rest is unchanged."""
    feed = FakeFeed([[coin(1), coin(2), coin(3)]])
    pipeline = Pipeline(settings, pool, registry=registry(coingecko=feed))
    [first] = await pipeline.run(["coingecko"], RunTrigger.CLI)
    feed.pages = [[coin(1), coin(2, price=99.5), coin(3)]]
    [second] = await pipeline.run(["coingecko"], RunTrigger.CLI)

    assert (second.counts.inserted, second.counts.updated, second.counts.unchanged) == (0, 1, 2)
    rows = await pool.fetch(
        "SELECT coin_id, price_usd, run_id FROM unified_crypto_data ORDER BY coin_id"
    )
    assert [(r["coin_id"], r["price_usd"]) for r in rows] == [
        ("coin-1", 1.0),
        ("coin-2", 99.5),
        ("coin-3", 3.0),
    ]
    assert {r["coin_id"]: r["run_id"] for r in rows} == {
        "coin-1": first.run_id,
        "coin-2": second.run_id,
        "coin-3": first.run_id,
    }


async def test_unified_rows_point_at_the_raw_row_holding_their_payload(
    settings: Settings, pool: Pool
) -> None:
    """raw_id links every unified row to the raw record it came from, on first and later runs."""
    feed = FakeFeed(pages(2, 5))
    pipeline = Pipeline(settings, pool, registry=registry(coingecko=feed))
    await pipeline.run(["coingecko"], RunTrigger.CLI)
    await pipeline.run(["coingecko"], RunTrigger.CLI)
    rows = await pool.fetch(
        f"""
        SELECT u.coin_id, u.price_usd, u.observed_at, r.coin_id AS raw_coin,
               r.source_updated_at, (r.payload->>'price')::float8 AS raw_price
        FROM unified_crypto_data u
        LEFT JOIN ({RAW_RECORDS}) r ON r.id = u.raw_id AND r.source = 'coingecko'
             AND r.coin_id = u.coin_id AND r.source_updated_at = u.observed_at
        """  # noqa: S608
    )
    assert len(rows) == 10
    for row in rows:
        assert row["raw_coin"] == row["coin_id"]
        assert row["source_updated_at"] == row["observed_at"]
        assert row["raw_price"] == row["price_usd"]


async def test_one_failing_source_does_not_stop_the_others(settings: Settings, pool: Pool) -> None:
    """A source whose upstream refuses fails with the reason everywhere; the other succeeds."""
    refused = UpstreamRejectedError(
        "coingecko", "the API key was rejected (COINGECKO_API_KEY): HTTP 401", status=401
    )
    feeds = registry(
        coingecko=FakeFeed(pages(2, 3), fail_at=1, error=refused),
        coinpaprika=FakeFeed(pages(1, 3)),
    )
    outcomes = by_source(await Pipeline(settings, pool, registry=feeds).run(None, RunTrigger.CLI))

    gecko = outcomes["coingecko"]
    assert gecko.status is RunStatus.FAILED
    assert gecko.error == str(refused)
    assert outcomes["coinpaprika"].status is RunStatus.SUCCESS
    assert outcomes["coinpaprika"].counts.inserted == 3
    run = await pool.fetchrow(
        "SELECT status, error, fetched FROM etl_runs WHERE id = $1", gecko.run_id
    )
    assert run is not None
    assert (run["status"], run["error"], run["fetched"]) == ("failed", str(refused), 0)
    checkpoint = await pool.fetchrow(
        "SELECT status, last_error, last_failure_at, last_success_at, last_run_id "
        "FROM checkpoints WHERE source = 'coingecko'"
    )
    assert checkpoint is not None
    assert checkpoint["status"] == "failed"
    assert checkpoint["last_error"] == str(refused)
    assert checkpoint["last_failure_at"] == gecko.finished_at
    assert checkpoint["last_success_at"] is None
    assert checkpoint["last_run_id"] == gecko.run_id
    paprika = await pool.fetchrow(
        "SELECT status, last_error, last_success_at FROM checkpoints WHERE source = 'coinpaprika'"
    )
    assert paprika is not None
    assert paprika["status"] == "success"
    assert paprika["last_error"] is None
    assert paprika["last_success_at"] == outcomes["coinpaprika"].finished_at


async def test_fetch_failing_at_page_3_of_4_keeps_1_2_and_resumes_at_3(
    settings: Settings, pool: Pool
) -> None:
    """Pages 1-2 stay committed with the cursor at page 3; the next run fetches only 3 and 4."""
    feed = FakeFeed(pages(4, 5), fail_at=3)
    pipeline = Pipeline(settings, pool, registry=registry(coingecko=feed))
    with structlog.testing.capture_logs() as logs:
        [first] = await pipeline.run(["coingecko"], RunTrigger.SCHEDULE)

    assert first.status is RunStatus.PARTIAL
    assert "gave up after 4 attempts" in (first.error or "")
    [finished] = [e for e in logs if e["event"] == "source_run_finished"]
    assert finished["log_level"] == "warning"  # partial; a failed source logs an error
    assert (first.batches, first.counts.inserted) == (2, 10)
    assert await pool.fetchval("SELECT count(*) FROM unified_crypto_data") == 10
    cursor = await pool.fetchval("SELECT cursor FROM checkpoints WHERE source = 'coingecko'")
    assert cursor == {"page": 3}
    checkpoint = await pool.fetchrow(
        "SELECT status, last_failure_at, last_success_at FROM checkpoints"
    )
    assert checkpoint is not None
    assert checkpoint["status"] == "partial"
    assert checkpoint["last_failure_at"] == first.finished_at
    assert checkpoint["last_success_at"] is None

    feed.fail_at, feed.fetched = None, []
    [second] = await pipeline.run(["coingecko"], RunTrigger.SCHEDULE)
    assert feed.fetched == [3, 4]
    assert second.status is RunStatus.SUCCESS
    assert (second.batches, second.counts.inserted) == (2, 10)
    assert await pool.fetchval("SELECT count(DISTINCT coin_id) FROM unified_crypto_data") == 20


async def test_a_source_that_yields_nothing_is_failed_not_success(
    settings: Settings, pool: Pool
) -> None:
    """No batch at all is a failure with a reason, never a success with 0 rows."""
    pipeline = Pipeline(settings, pool, registry=registry(coingecko=FakeFeed([])))
    [outcome] = await pipeline.run(["coingecko"], RunTrigger.CLI)
    assert outcome.status is RunStatus.FAILED
    assert outcome.error == "the source returned no data (no batch at all)"


async def test_a_source_that_is_not_installed_fails_alone(settings: Settings, pool: Pool) -> None:
    """An enabled source with no implementation fails with the reason; the others run."""
    pipeline = Pipeline(settings, pool, registry=registry(coinpaprika=FakeFeed(pages(1, 2))))
    outcomes = by_source(await pipeline.run(["coingecko", "coinpaprika"], RunTrigger.CLI))
    assert outcomes["coingecko"].status is RunStatus.FAILED
    assert outcomes["coingecko"].error == "no source named 'coingecko' is installed"
    assert outcomes["coinpaprika"].status is RunStatus.SUCCESS


async def test_unknown_source_names_are_refused_before_anything_starts(
    settings: Settings, pool: Pool
) -> None:
    """A name that is no source at all raises and starts no run."""
    pipeline = Pipeline(settings, pool, registry=registry(coingecko=FakeFeed([])))
    with pytest.raises(ValueError, match="unknown source"):
        await pipeline.begin(["coingecko", "nasdaq"], RunTrigger.CLI)
    assert await pool.fetchval("SELECT count(*) FROM etl_runs") == 0
