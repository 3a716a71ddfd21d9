"""Backfill against the loopback history endpoints, into the real database: one row per point
or candle, nothing stored twice, per-coin errors (404, plan refusal) with the provider's answer,
429 with Retry-After honoured, the asset history, and a backfill next to a live run."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.errors import BackfillRequestError, RunInProgressError
from cryptoetl.etl.backfill import Backfill
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import BackfillRequest, RunStatus, RunTrigger
from tests.support.raw_pages import raw_records_of
from tests.support.upstream import Upstream, rate_limited, server_error, status
from tests.support.upstream_history import ETH_OHLCV

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def settings(source_settings: SettingsFactory, db_url: str) -> SettingsFactory:
    def make(**overrides: Any) -> Settings:
        return source_settings(**({"database_url": db_url} | overrides))

    return make


async def rows(pool: Pool, source: str, coin: str) -> list[Any]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT observed_at, price_usd, name, symbol, raw_id FROM unified_crypto_data "
            "WHERE source = $1 AND coin_id = $2 ORDER BY observed_at",
            source,
            coin,
        )


def history_requests(upstream: Upstream, api: str, coin: str) -> list[Any]:
    return [r for r in upstream.requests_to(api) if f"/coins/{coin}/" in r.path]


async def test_coingecko_30_days_stores_every_hourly_point_once(
    settings: SettingsFactory,
    pool: Pool,
    upstream: Upstream,
    make_client: Callable[..., Any],
) -> None:
    backfill = Backfill(settings(), pool)
    request = BackfillRequest("coingecko", coins=["bitcoin", "ethereum"], days=30)
    outcome = await backfill.run(request)
    assert outcome.status is RunStatus.SUCCESS, outcome.error
    served = {}
    for coin in ("bitcoin", "ethereum"):
        answers = history_requests(upstream, "coingecko", coin)
        assert len(answers) == 1  # 30 days is one hourly request
        served[coin] = (int(answers[0].query["to"]) - int(answers[0].query["from"])) // 3600
        stored = await rows(pool, "coingecko", coin)
        assert len(stored) == served[coin] == 720  # one row per hourly point of the range
        times = [row["observed_at"] for row in stored]
        assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(times))
        assert times[-1] - times[0] >= timedelta(days=29, hours=22)
        assert all(row["raw_id"] is not None for row in stored)
    assert [row["symbol"] for row in (await rows(pool, "coingecko", "bitcoin"))[:1]] == ["BTC"]
    async with pool.acquire() as conn:
        raw = await conn.fetchval(
            f"SELECT count(*) FROM {raw_records_of('coingecko')} AND r.payload ? 'prices'"  # noqa: S608
        )
        run = await conn.fetchrow("SELECT * FROM etl_runs WHERE id = $1", outcome.run_id)
    assert run is not None
    assert raw == 1440
    assert (run["trigger"], run["status"], run["inserted"]) == ("backfill", "success", 1440)

    again = await backfill.run(request)  # the same command again: nothing new, no request
    assert (again.status, again.counts.inserted, again.counts.updated) == (RunStatus.SUCCESS, 0, 0)
    assert len(history_requests(upstream, "coingecko", "bitcoin")) == 1
    assert len(await rows(pool, "coingecko", "bitcoin")) == 720

    async with make_client(settings()) as client:
        answer = await client.get("/api/v1/assets/bitcoin/history", params={"interval": "1d"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["buckets"]) >= 29


async def test_an_overlapping_range_stores_only_what_is_new(
    settings: SettingsFactory, pool: Pool, upstream: Upstream
) -> None:
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    backfill = Backfill(settings(), pool)
    first = await backfill.run(
        BackfillRequest(
            "coingecko", coins=["bitcoin"], since=until - timedelta(days=10), until=until
        )
    )
    second = await backfill.run(
        BackfillRequest(
            "coingecko",
            coins=["bitcoin"],
            since=until - timedelta(days=15),
            until=until - timedelta(days=5),
        )
    )
    assert first.counts.inserted == 240
    # 15..5 days back overlaps 10..5: only the five days before it are new
    assert (second.counts.inserted, second.counts.unchanged) == (120, second.counts.fetched - 120)
    assert len(await rows(pool, "coingecko", "bitcoin")) == 360


async def test_a_year_is_requested_hourly_in_chunks_of_at_most_90_days(
    settings: SettingsFactory, pool: Pool, upstream: Upstream
) -> None:
    upstream.history_limit_days["coingecko"] = None
    outcome = await Backfill(settings(), pool).run(
        BackfillRequest("coingecko", coins=["tether"], days=365)
    )
    assert outcome.status is RunStatus.SUCCESS, outcome.error
    spans = [
        int(r.query["to"]) - int(r.query["from"])
        for r in history_requests(upstream, "coingecko", "tether")
    ]
    assert len(spans) == 5
    assert all(2 * 86400 <= span <= 90 * 86400 for span in spans)
    assert len(await rows(pool, "coingecko", "tether")) == 365 * 24


async def test_coinpaprika_30_days_stores_one_row_per_daily_candle(
    settings: SettingsFactory, pool: Pool, upstream: Upstream
) -> None:
    outcome = await Backfill(settings(), pool).run(
        BackfillRequest("coinpaprika", coins=["btc-bitcoin"], days=30)
    )
    assert outcome.status is RunStatus.SUCCESS, outcome.error
    stored = await rows(pool, "coinpaprika", "btc-bitcoin")
    assert len(stored) == 30
    assert {row["observed_at"].time().isoformat() for row in stored} == {"23:59:59"}
    assert len({row["observed_at"].date() for row in stored}) == 30
    (request,) = history_requests(upstream, "coinpaprika", "btc-bitcoin")
    assert request.query["limit"] == "366"


async def test_recorded_candles_keep_their_close_and_time(
    settings: SettingsFactory, pool: Pool, upstream: Upstream
) -> None:
    recorded = json.loads(ETH_OHLCV.read_bytes())
    outcome = await Backfill(settings(), pool).run(
        BackfillRequest(
            "coinpaprika",
            coins=["eth-ethereum"],
            since=datetime(2022, 1, 19, tzinfo=UTC),
            until=datetime(2022, 4, 20, tzinfo=UTC),
        )
    )
    assert outcome.status is RunStatus.SUCCESS, outcome.error
    stored = await rows(pool, "coinpaprika", "eth-ethereum")
    assert len(stored) == len(recorded) == 91
    assert [row["price_usd"] for row in stored] == [candle["close"] for candle in recorded]
    assert stored[-1]["observed_at"] == datetime(2022, 4, 19, 15, 44, tzinfo=UTC)  # partial day


async def test_an_unknown_coin_is_named_with_the_answer_and_the_others_load(
    settings: SettingsFactory, pool: Pool, upstream: Upstream
) -> None:
    outcome = await Backfill(settings(), pool).run(
        BackfillRequest("coinpaprika", coins=["btc-bitcoin", "nope-nocoin", "eth-ethereum"], days=7)
    )
    assert outcome.status is RunStatus.PARTIAL
    assert list(outcome.coin_errors) == ["nope-nocoin"]
    error = outcome.error or ""
    assert "nope-nocoin: unknown to coinpaprika: HTTP 404 Not Found: id not found" in error
    assert len(history_requests(upstream, "coinpaprika", "nope-nocoin")) == 1  # never retried
    assert len(await rows(pool, "coinpaprika", "btc-bitcoin")) == 7
    assert len(await rows(pool, "coinpaprika", "eth-ethereum")) == 7
    async with pool.acquire() as conn:
        progress = await conn.fetchrow(
            "SELECT coins_done, coin_errors FROM backfill_runs WHERE run_id = $1", outcome.run_id
        )
    assert progress is not None
    assert progress["coins_done"] == 2
    assert [e["coin"] for e in progress["coin_errors"]] == ["nope-nocoin"]


async def test_a_range_the_plan_refuses_is_one_clear_error_per_coin(
    settings: SettingsFactory, pool: Pool, upstream: Upstream
) -> None:
    outcome = await Backfill(settings(), pool).run(
        BackfillRequest("coingecko", coins=["bitcoin", "ethereum"], days=400)
    )
    assert outcome.status is RunStatus.FAILED
    assert set(outcome.coin_errors) == {"bitcoin", "ethereum"}
    for coin, error in outcome.coin_errors.items():
        assert f"{coin}: coingecko refused the range" in error
        assert "HTTP 401 Unauthorized" in error
        assert "past 365 days" in error
        assert len(history_requests(upstream, "coingecko", coin)) == 1  # not a retry loop


async def test_a_429_with_retry_after_is_waited_out(
    settings: SettingsFactory, pool: Pool, upstream: Upstream
) -> None:
    # Retry-After 1 s is longer than MAX_RETRY_DELAY (0.2 s): the client gives up, the
    # backfill waits the bucket's deferral out and asks again
    upstream.program("coingecko", rate_limited("1"))
    outcome = await Backfill(settings(max_retries=0), pool).run(
        BackfillRequest("coingecko", coins=["bitcoin"], days=3)
    )
    assert outcome.status is RunStatus.SUCCESS, outcome.error
    first, second, chunk = upstream.requests_to("coingecko")  # names (429, again), the chunk
    assert (first.status, second.status, chunk.status) == (429, 200, 200)
    assert second.at - first.at >= 0.95
    assert "market_chart/range" in chunk.path
    stored = await rows(pool, "coingecko", "bitcoin")
    assert len(stored) == 72
    assert stored[0]["symbol"] == "BTC"


async def test_a_backfill_and_a_live_run_of_one_source_coexist(
    settings: SettingsFactory, pool: Pool, upstream: Upstream
) -> None:
    upstream.delay["coingecko"] = 0.3
    backfill = Backfill(settings(), pool)
    started = await backfill.begin(BackfillRequest("coingecko", coins=["bitcoin"], days=2))
    with pytest.raises(RunInProgressError):
        await backfill.begin(BackfillRequest("coingecko", coins=["ethereum"], days=2))
    outcomes = await Pipeline(settings(), pool).run(["coingecko"], RunTrigger.MANUAL)
    assert [o.status for o in outcomes] == [RunStatus.SUCCESS]
    done = await backfill.execute(started)
    assert done.status is RunStatus.SUCCESS
    async with pool.acquire() as conn:
        checkpoint = await conn.fetchrow("SELECT * FROM checkpoints WHERE source = 'coingecko'")
    assert checkpoint is not None
    assert checkpoint["last_run_id"] == outcomes[0].run_id  # the backfill leaves it alone


async def test_top_n_takes_the_largest_coins_of_the_latest_snapshot(
    settings: SettingsFactory, pool: Pool, upstream: Upstream
) -> None:
    backfill = Backfill(settings(), pool)
    await backfill.run(BackfillRequest("coingecko", coins=["bitcoin"], days=2))
    with pytest.raises(BackfillRequestError, match="no coingecko snapshot"):  # history is not one
        await backfill.begin(BackfillRequest("coingecko", top=3, days=2))
    await Pipeline(settings(), pool).run(["coingecko"], RunTrigger.MANUAL)
    started = await backfill.begin(BackfillRequest("coingecko", top=3, days=2))
    assert started.range.coins == ["bitcoin", "ethereum", "tether"]
    assert started.range.names["bitcoin"] == ("Bitcoin", "BTC")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (BackfillRequest("csv", coins=["x"], days=1), "no history endpoint"),
        (BackfillRequest("coingecko", days=1), "name the coins"),
        (BackfillRequest("coingecko", coins=["a/b"], days=1), "not a coin id"),
        (BackfillRequest("coingecko", coins=["bitcoin"]), "give the range"),
        (BackfillRequest("coingecko", coins=["bitcoin"], days=0), "days must be"),
    ],
)
async def test_a_bad_request_says_what_to_fix(
    settings: SettingsFactory, pool: Pool, request_: BackfillRequest, message: str
) -> None:
    with pytest.raises(BackfillRequestError, match=message):
        await Backfill(settings(), pool).begin(request_)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM etl_runs") == 0


async def test_a_provider_that_gives_no_answer_stops_the_backfill_until_it_is_run_again(
    settings: SettingsFactory, pool: Pool, upstream: Upstream
) -> None:
    upstream.program("coingecko", *[server_error(503)] * 4)
    request = BackfillRequest("coingecko", coins=["bitcoin", "ethereum"], days=2)
    backfill = Backfill(settings(max_retries=1), pool)
    # names: the first two 503s exhaust the retries (a name lookup failing is not fatal)
    stopped = await backfill.run(request)
    assert stopped.status is RunStatus.FAILED
    assert list(stopped.coin_errors) == ["bitcoin"]
    assert "gave up after 2 attempts: HTTP 503" in stopped.coin_errors["bitcoin"]
    assert "stopped after bitcoin failed for want of an answer: 1 coins not asked" in (
        stopped.error or ""
    )
    assert history_requests(upstream, "coingecko", "ethereum") == []
    resumed = await backfill.run(request)
    assert resumed.status is RunStatus.SUCCESS, resumed.error
    assert len(await rows(pool, "coingecko", "bitcoin")) == 48
    assert len(await rows(pool, "coingecko", "ethereum")) == 48


async def test_without_a_coin_list_a_declared_asset_still_names_its_coingecko_coin(
    settings: SettingsFactory, pool: Pool, upstream: Upstream, make_client: Callable[..., Any]
) -> None:
    """A CoinGecko mirror with no `/coins/markets`: `bitcoin` is an asset the overrides file
    declares, so its rows are named after it and its history is Bitcoin's."""
    upstream.program("coingecko", status(404))  # the coin list lookup
    outcome = await Backfill(settings(), pool).run(
        BackfillRequest("coingecko", coins=["bitcoin", "tether"], days=3)
    )
    assert outcome.status is RunStatus.SUCCESS, outcome.error
    assert {(r["name"], r["symbol"]) for r in await rows(pool, "coingecko", "bitcoin")} == {
        ("Bitcoin", "BTC")
    }
    assert {r["symbol"] for r in await rows(pool, "coingecko", "tether")} == {None}
    async with make_client(settings()) as client:
        answer = await client.get("/api/v1/assets/bitcoin/history", params={"interval": "1d"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["buckets"]) >= 3
