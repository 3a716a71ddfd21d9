"""CoinPaprika: one /tickers call, batches of tickers, the pro host and its key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from cryptoetl.config import Settings
from cryptoetl.errors import BadPayloadError, UpstreamRejectedError
from cryptoetl.sources import load_settings
from cryptoetl.sources.base import SourceContext
from cryptoetl.sources.coinpaprika import CoinPaprika, CoinPaprikaSettings, endpoint
from tests.support.sourcing import make_source, run_source
from tests.support.upstream import Upstream, empty_list

MakeSettings = Callable[..., Settings]


async def test_tickers_become_unified_records_in_usd(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """One request for /tickers?quotes=USD; every ticker loads with its USD quote and time."""
    outcome = await run_source(make_source("coinpaprika", source_settings()))
    (request,) = upstream.requests_to("coinpaprika")
    assert (request.path, request.query) == ("/v1/tickers", {"quotes": "USD"})
    assert outcome.rejected == []
    records = {a.record.coin_id: a.record for a in outcome.accepted}
    assert len(records) == 81
    bitcoin = records["btc-bitcoin"]
    assert (bitcoin.name, bitcoin.symbol) == ("Bitcoin", "BTC")
    assert bitcoin.price_usd == 60697.885839641
    assert bitcoin.market_cap == 1144226103905
    assert bitcoin.volume_24h == 49092990352.954
    assert bitcoin.observed_at == datetime(2021, 10, 22, 18, 11, 5, tzinfo=UTC)
    link = records["link-chainlink"]
    assert link.price_usd == 12.670516968859562
    assert link.observed_at == datetime(2024, 9, 27, 23, 59, 59, tzinfo=UTC)


async def test_a_long_list_is_split_into_batches_with_running_positions(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """81 tickers in batches of 30: three batches, one request, positions 0..80 in order."""
    source = CoinPaprika(SourceContext(settings=source_settings()), batch_size=30)
    outcome = await run_source(source)
    assert len(upstream.requests_to("coinpaprika")) == 1
    assert [len(b.items) for b in outcome.batches] == [30, 30, 21]
    assert [b.label for b in outcome.batches] == ["tickers 0-29", "tickers 30-59", "tickers 60-80"]
    positions = [item.position for b in outcome.batches for item in b.items]
    assert positions == list(range(81))
    assert all(b.cursor == {} for b in outcome.batches)


async def test_an_empty_list_fails_the_fetch_saying_so(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """`[]` from /tickers is a fault (CoinPaprika always lists coins): no batch, an error."""
    upstream.program("coinpaprika", empty_list())
    with pytest.raises(BadPayloadError, match="/tickers answered an empty list"):
        await run_source(make_source("coinpaprika", source_settings()))


async def test_renamed_fields_become_rejections_with_reasons(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """`quotes.USD.price` renamed upstream: every ticker rejected, saying which field is gone."""
    upstream.renamed["coinpaprika"] = {"quotes.USD.price": "price_usd"}
    outcome = await run_source(make_source("coinpaprika", source_settings()))
    assert outcome.accepted == []
    assert len(outcome.rejected) == 81
    first = outcome.rejected[0]
    assert first.reason == "quotes.USD.price: missing"
    assert first.locator == "tickers 0-80 #0 id=btc-bitcoin"
    assert '"price_usd":60697.885839641' in first.raw


async def test_a_rejected_key_fails_at_once(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """403 for a bad key: not retried, the error says the key was rejected and hides it."""
    upstream.valid_keys["coinpaprika"] = {"paprika-good-key-000"}
    settings = source_settings(coinpaprika_api_key="paprika-bad-key-111")
    with pytest.raises(UpstreamRejectedError) as caught:
        await run_source(make_source("coinpaprika", settings))
    (request,) = upstream.requests_to("coinpaprika")
    assert request.headers["authorization"] == "paprika-bad-key-111"
    assert caught.value.status == 403
    message = str(caught.value)
    assert "the API key was rejected (COINPAPRIKA_API_KEY)" in message
    assert "invalid API key" in message
    assert "paprika-bad-key-111" not in message


@pytest.mark.parametrize(
    ("values", "base", "headers"),
    [
        ({}, "https://api.coinpaprika.com/v1", {}),
        (
            {"coinpaprika_api_key": "k-1"},
            "https://api-pro.coinpaprika.com/v1",
            {"Authorization": "k-1"},
        ),
        (
            {"coinpaprika_api_key": "k-1", "coinpaprika_base_url": "http://127.0.0.1:9000/v1"},
            "http://127.0.0.1:9000/v1",
            {"Authorization": "k-1"},
        ),
    ],
)
def test_a_key_selects_the_pro_host(
    values: dict[str, Any], base: str, headers: dict[str, str]
) -> None:
    """No key: the free host; a key: api-pro with the key in Authorization."""
    target = endpoint(load_settings(env_file=None, **values).of(CoinPaprikaSettings))
    assert target.base_url == base
    assert dict(target.headers) == headers
