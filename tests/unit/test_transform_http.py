"""The pure transforms of the HTTP sources: what is accepted, what is rejected and why."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from cryptoetl.models import Accepted, Batch, Rejection, ResponseMeta, SourceRecord
from cryptoetl.transform import coingecko, coinpaprika
from tests.support import FIXTURES

FETCHED = datetime(2025, 2, 9, 17, 45, tzinfo=UTC)


def batch(source: str, label: str = "page 2") -> Batch:
    meta = ResponseMeta(url="http://x", status=200, fetched_at=FETCHED, elapsed_ms=1.0)
    return Batch(source=source, items=[], meta=meta, cursor={}, label=label)


def gecko(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "bitcoin",
        "symbol": "btc",
        "name": "Bitcoin",
        "current_price": 96114.08,
        "market_cap": 1903746811536,
        "total_volume": 20388876648,
        "last_updated": "2025-02-09T17:44:04.143Z",
    }
    for key, value in changes.items():
        if value is ...:
            record.pop(key)
        else:
            record[key] = value
    return record


def run_gecko(payload: dict[str, Any], position: int = 17) -> Accepted | Rejection:
    return coingecko.transform(SourceRecord(payload=payload, position=position), batch("coingecko"))


def test_a_valid_market_item_maps_to_the_unified_shape() -> None:
    """Price, cap, volume, upper-cased symbol, and the item's own time in UTC."""
    result = run_gecko(gecko())
    assert isinstance(result, Accepted)
    record = result.record
    assert (record.source, record.coin_id, record.name, record.symbol) == (
        "coingecko",
        "bitcoin",
        "Bitcoin",
        "BTC",
    )
    assert (record.price_usd, record.market_cap, record.volume_24h) == (
        96114.08,
        1903746811536,
        20388876648,
    )
    assert record.observed_at == datetime(2025, 2, 9, 17, 44, 4, 143000, tzinfo=UTC)
    assert str(result.locator) == "bitcoin@2025-02-09T17:44:04.143000+00:00"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"id": ...}, "id: missing"),
        ({"id": "  "}, "id: string should have at least 1 character (got '  ')"),
        ({"last_updated": ...}, "last_updated: missing"),
        ({"last_updated": None}, "last_updated: null"),
        ({"last_updated": "soon"}, "last_updated: input should be a valid datetime"),
        ({"last_updated": "1970-01-01T00:00:00Z"}, "last_updated: before 2009-01-03"),
        ({"current_price": ...}, "current_price: missing"),
        ({"current_price": None}, "current_price: null"),
        ({"current_price": -1.5}, "current_price: negative (got -1.5)"),
        ({"current_price": math.nan}, "current_price: not a finite number (got nan)"),
        ({"current_price": "NaN"}, "current_price: not a finite number (got 'NaN')"),
        ({"current_price": "cheap"}, "current_price: input should be a valid number"),
        ({"current_price": True}, "current_price: a boolean, not a number (got True)"),
        ({"market_cap": -3}, "market_cap: negative (got -3)"),
    ],
)
def test_an_unusable_record_is_rejected_with_its_reason(
    changes: dict[str, Any], reason: str
) -> None:
    """No id, no time, no usable USD price (missing, null, negative, NaN): rejected, saying so."""
    result = run_gecko(gecko(**changes))
    assert isinstance(result, Rejection)
    assert result.reason.startswith(reason)
    assert result.locator.startswith("page 2 #17")


def test_a_rejection_lists_every_problem_and_keeps_the_record() -> None:
    """All reasons at once, the locator with the id, the raw JSON text of the record."""
    payload = gecko(current_price=None, last_updated=...)
    result = run_gecko(payload)
    assert isinstance(result, Rejection)
    assert result.reason == "current_price: null; last_updated: missing"
    assert result.locator == "page 2 #17 id=bitcoin"
    assert json.loads(result.raw) == payload


def test_null_market_cap_and_volume_are_kept_as_null() -> None:
    """Only the price is required: a null cap or volume loads as null."""
    result = run_gecko(gecko(market_cap=None, total_volume=None))
    assert isinstance(result, Accepted)
    assert (result.record.market_cap, result.record.volume_24h) == (None, None)


def test_a_time_without_zone_is_utc_and_other_zones_are_converted() -> None:
    """`2025-02-09T17:44:04` is UTC; `+02:00` is converted to UTC."""
    naive = run_gecko(gecko(last_updated="2025-02-09T17:44:04"))
    shifted = run_gecko(gecko(last_updated="2025-02-09T19:44:04+02:00"))
    assert isinstance(naive, Accepted)
    assert isinstance(shifted, Accepted)
    assert naive.record.observed_at == shifted.record.observed_at
    assert naive.record.observed_at.tzinfo == UTC


def test_a_time_far_after_the_fetch_is_rejected() -> None:
    """A last_updated days after the answer arrived is not an observation."""
    result = run_gecko(gecko(last_updated="2025-03-01T00:00:00Z"))
    assert isinstance(result, Rejection)
    assert result.reason.startswith("last_updated: in the future")


def test_an_item_that_is_not_an_object_is_rejected() -> None:
    """A bare string in the list is rejected on its own; the rest of the page still loads."""
    item = SourceRecord(payload={}, position=4, raw_text='"bitcoin"')
    result = coingecko.transform(item, batch("coingecko"))
    assert isinstance(result, Rejection)
    assert result.reason == "not a JSON object: '\"bitcoin\"'"
    assert result.raw == '"bitcoin"'


def test_the_real_recorded_ticker_maps_from_quotes_usd() -> None:
    """The byte-exact btc-bitcoin ticker: price, cap, volume from quotes.USD, own time."""
    path = FIXTURES / "coinpaprika" / "coinpaprika_ticker_btc-bitcoin_quotesUSD_2022-04-19.json"
    payload = json.loads(path.read_bytes())
    meta = ResponseMeta(
        url="x", status=200, fetched_at=datetime(2022, 4, 19, 15, 45, tzinfo=UTC), elapsed_ms=1
    )
    tickers = Batch(source="coinpaprika", items=[], meta=meta, cursor={}, label="tickers 0-0")
    result = coinpaprika.transform(SourceRecord(payload=payload, position=0), tickers)
    assert isinstance(result, Accepted)
    record = result.record
    assert (record.coin_id, record.symbol, record.name) == ("btc-bitcoin", "BTC", "Bitcoin")
    assert record.price_usd == 41389.57931641128
    assert record.market_cap == 787066061422
    assert record.volume_24h == 35357658696.99645
    assert record.observed_at == datetime(2022, 4, 19, 15, 43, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"id": "x-x", "last_updated": "2022-04-19T15:43:22Z"}, "quotes: missing"),
        (
            {"id": "x-x", "last_updated": "2022-04-19T15:43:22Z", "quotes": {}},
            "quotes.USD: missing",
        ),
        (
            {
                "id": "x-x",
                "last_updated": "2022-04-19T15:43:22Z",
                "quotes": {"USD": {"price": None}},
            },
            "quotes.USD.price: null",
        ),
        ({"id": "x-x", "quotes": {"USD": {"price": 1.0}}}, "last_updated: missing"),
    ],
)
def test_a_ticker_without_a_usd_price_or_time_is_rejected(
    payload: dict[str, Any], reason: str
) -> None:
    """CoinPaprika's required parts: quotes.USD.price and last_updated."""
    result = coinpaprika.transform(
        SourceRecord(payload=payload, position=9), batch("coinpaprika", "tickers 0-99")
    )
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.locator == "tickers 0-99 #9 id=x-x"
