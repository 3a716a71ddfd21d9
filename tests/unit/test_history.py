"""The history endpoints' pure parts: how a range is chunked, how CoinGecko's three arrays are
joined, how a point or a candle becomes a unified row (or a rejection with its reason), and how
a backfill request is checked."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from cryptoetl.errors import BackfillRequestError
from cryptoetl.etl.backfill_request import check, parse_time
from cryptoetl.models import Accepted, BackfillRequest, Batch, Rejection, ResponseMeta, SourceRecord
from cryptoetl.sources import history_coingecko, history_coinpaprika
from cryptoetl.transform import history

NOW = datetime(2026, 6, 15, 12, 34, 56, tzinfo=UTC)


def batch(source: str, name: str | None = "Bitcoin", symbol: str | None = "btc") -> Batch:
    meta = ResponseMeta(url="http://x", status=200, fetched_at=NOW, elapsed_ms=1.0)
    context = {"coin_id": "btc-bitcoin", "name": name, "symbol": symbol}
    return Batch(source=source, items=[], meta=meta, cursor={}, label="bitcoin x", context=context)


def test_a_year_is_five_contiguous_hourly_chunks_of_at_most_90_days() -> None:
    until = NOW.replace(minute=0, second=0, microsecond=0)
    chunks = history_coingecko.chunks(until - timedelta(days=365), until, NOW)
    assert len(chunks) == 5
    assert chunks[0].start == until - timedelta(days=365)
    assert chunks[-1].end == until
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))
    assert all(timedelta(days=2) <= c.end - c.start <= timedelta(days=90) for c in chunks)


def test_one_day_up_to_now_is_asked_as_two_days_so_the_points_stay_hourly() -> None:
    until = history_coingecko.align(NOW)
    (chunk,) = history_coingecko.chunks(until - timedelta(days=1), until, NOW)
    assert chunk.end - chunk.start == timedelta(days=2)
    old = until - timedelta(days=30)  # a day in the past answers hourly as it is
    (chunk,) = history_coingecko.chunks(old - timedelta(days=1), old, NOW)
    assert chunk.end - chunk.start == timedelta(days=1)


def test_candles_are_asked_in_whole_days_up_to_366_a_request() -> None:
    until = history_coinpaprika.align(NOW)
    assert until == datetime(2026, 6, 15, tzinfo=UTC)
    (month,) = history_coinpaprika.chunks(until - timedelta(days=30), until, NOW)
    assert month.end - month.start == timedelta(days=30)
    two = history_coinpaprika.chunks(until - timedelta(days=400), until, NOW)
    assert [c.end - c.start for c in two] == [timedelta(days=366), timedelta(days=34)]


def test_the_three_arrays_are_joined_by_timestamp() -> None:
    data = {
        "prices": [[1000, 1.5], [2000, 2.5], [3000, None]],
        "market_caps": [[1000, 10.0], [3000, 30.0]],
        "total_volumes": [[2000, 200.0], "junk"],
    }
    assert history_coingecko.points("x", data) == [
        {"id": "x", "prices": [1000, 1.5], "market_caps": [1000, 10.0]},
        {"id": "x", "prices": [2000, 2.5], "total_volumes": [2000, 200.0]},
        {"id": "x", "prices": [3000, None], "market_caps": [3000, 30.0]},
    ]


def test_a_point_becomes_a_row_at_its_own_time_named_from_the_context() -> None:
    item = SourceRecord(
        {
            "id": "bitcoin",
            "prices": [1_750_000_000_000, 104_000.5],
            "market_caps": [1_750_000_000_000, 2e12],
        },
        0,
    )
    outcome = history.coingecko_point(item, batch("coingecko"))
    assert isinstance(outcome, Accepted)
    record = outcome.record
    assert record.observed_at == datetime.fromtimestamp(1_750_000_000, UTC)
    assert (record.price_usd, record.market_cap, record.volume_24h) == (104_000.5, 2e12, None)
    assert (record.name, record.symbol, record.coin_id) == ("Bitcoin", "BTC", "bitcoin")
    assert outcome.locator.at == record.observed_at


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"id": "bitcoin", "prices": [1_750_000_000_000, None]}, "prices.1: null"),
        ({"id": "bitcoin", "prices": [True, 1.0]}, "prices.0: not a unix time in milliseconds"),
        ({"id": "bitcoin", "prices": [1000, 1.0]}, "before 2009-01-03"),
        ({"id": "bitcoin", "prices": [1_750_000_000_000, -1]}, "prices.1: negative"),
    ],
)
def test_a_bad_point_is_rejected_with_its_reason(payload: dict[str, object], reason: str) -> None:
    outcome = history.coingecko_point(SourceRecord(payload, 3), batch("coingecko"))
    assert isinstance(outcome, Rejection)
    assert reason in outcome.reason
    assert outcome.locator == "bitcoin x #3 id=bitcoin"


def test_a_candle_is_its_close_at_time_close() -> None:
    candle = {
        "time_open": "2022-01-19T00:00:00Z",
        "time_close": "2022-01-19T23:59:59Z",
        "open": 3167.8,
        "close": 3097.2,
        "volume": 15131525568,
        "market_cap": 369279876785,
    }
    outcome = history.coinpaprika_candle(SourceRecord(candle, 0), batch("coinpaprika"))
    assert isinstance(outcome, Accepted)
    record = outcome.record
    assert (record.coin_id, record.price_usd) == ("btc-bitcoin", 3097.2)
    assert record.observed_at == datetime(2022, 1, 19, 23, 59, 59, tzinfo=UTC)
    assert (record.market_cap, record.volume_24h) == (369279876785, 15131525568)
    bad = history.coinpaprika_candle(SourceRecord({"time_close": "x"}, 1), batch("coinpaprika"))
    assert isinstance(bad, Rejection)
    assert "close: missing" in bad.reason


def test_a_request_is_made_concrete_or_refused_with_what_to_fix() -> None:
    checked = check(BackfillRequest("coingecko", coins=["bitcoin", "bitcoin"], days=30), NOW)
    assert checked.coins == ["bitcoin"]
    assert checked.until == datetime(2026, 6, 15, 12, tzinfo=UTC)
    assert checked.since == checked.until - timedelta(days=30)
    paprika = check(BackfillRequest("coinpaprika", coins=["btc-bitcoin"], days=30), NOW)
    assert paprika.until == datetime(2026, 6, 15, tzinfo=UTC)
    future = check(
        BackfillRequest(
            "coingecko", coins=["x"], since=parse_time("2026-06-01"), until=parse_time("2027-01-01")
        ),
        NOW,
    )
    assert future.until == NOW  # never later than now
    with pytest.raises(BackfillRequestError, match="empty"):
        check(BackfillRequest("coingecko", coins=["x"], since=parse_time("2027-01-01")), NOW)
    with pytest.raises(BackfillRequestError, match="until needs since"):
        check(BackfillRequest("coingecko", coins=["x"], until=NOW), NOW)
    with pytest.raises(BackfillRequestError, match="not a date"):
        parse_time("yesterday")
