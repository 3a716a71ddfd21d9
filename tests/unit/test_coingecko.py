"""CoinGecko: the real 250-coin page, pages and the resume cursor, hosts and key headers."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cryptoetl.config import Settings
from cryptoetl.errors import BadPayloadError
from cryptoetl.sources import load_settings
from cryptoetl.sources.coingecko import CoinGeckoSettings, endpoint, resume_point
from tests.support.sourcing import make_source, run_source
from tests.support.upstream import Upstream, empty_list

MakeSettings = Callable[..., Settings]


async def test_the_real_page_becomes_250_unified_records(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """The recorded 250-coin page: 250 records with the payload's prices and timestamps."""
    recorded = {item["id"]: item for item in upstream.page_1}  # the recording, as served
    outcome = await run_source(make_source("coingecko", source_settings()))
    assert outcome.rejected == []
    records = {a.record.coin_id: a.record for a in outcome.accepted}
    assert len(outcome.accepted) == len(records) == 250
    bitcoin = records["bitcoin"]
    assert bitcoin.price_usd == 96114.08481738689
    assert bitcoin.market_cap == 1903746811536
    assert bitcoin.volume_24h == 20388876648
    assert bitcoin.observed_at == datetime(2025, 2, 9, 17, 44, 4, 143000, tzinfo=UTC)
    assert (bitcoin.name, bitcoin.symbol) == ("Bitcoin", "BTC")
    last = records["basic-attention-token"]
    assert last.price_usd == 0.17772792588377742
    assert last.observed_at == datetime(2025, 2, 9, 17, 44, 1, 889000, tzinfo=UTC)
    for coin_id, record in records.items():  # every price and time is the payload's own
        assert record.price_usd == recorded[coin_id]["current_price"]
        stamp = recorded[coin_id]["last_updated"].replace("Z", "+00:00")
        assert record.observed_at == datetime.fromisoformat(stamp)


async def test_repeated_symbols_stay_distinct_coins(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """usdt and weth appear several times on the page, each under its own coin id."""
    outcome = await run_source(make_source("coingecko", source_settings()))
    by_symbol = Counter(a.record.symbol for a in outcome.accepted)
    assert by_symbol["USDT"] >= 2
    assert by_symbol["WETH"] >= 2
    usdt_ids = {a.record.coin_id for a in outcome.accepted if a.record.symbol == "USDT"}
    assert "tether" in usdt_ids
    assert len(usdt_ids) == by_symbol["USDT"]


async def test_requests_ask_for_usd_pages_of_250(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """`/coins/markets?vs_currency=usd&per_page=250&page=N` for each configured page."""
    upstream.coingecko_pages = 3
    outcome = await run_source(make_source("coingecko", source_settings(coingecko_pages=3)))
    queries = [r.query for r in upstream.requests_to("coingecko")]
    assert [q["page"] for q in queries] == ["1", "2", "3"]
    assert all(q["vs_currency"] == "usd" and q["per_page"] == "250" for q in queries)
    assert [b.label for b in outcome.batches] == ["page 1", "page 2", "page 3"]
    assert [b.cursor["next_page"] for b in outcome.batches] == [2, 3, None]
    assert len({a.record.coin_id for a in outcome.accepted}) == 750


async def test_a_short_page_ends_the_cycle(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """Page 2 answers `[]`: the cycle ends there instead of asking for pages 3 and 4."""
    outcome = await run_source(make_source("coingecko", source_settings(coingecko_pages=4)))
    assert [r.query["page"] for r in upstream.requests_to("coingecko")] == ["1", "2"]
    assert [len(b.items) for b in outcome.batches] == [250, 0]
    assert outcome.batches[-1].cursor["next_page"] is None


async def test_an_empty_page_1_fails_the_fetch_saying_so(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """Page 1 answering `[]` is a fault, not the end of the list: no batch, an error."""
    upstream.program("coingecko", empty_list())
    with pytest.raises(BadPayloadError, match="page 1 of /coins/markets answered an empty list"):
        await run_source(make_source("coingecko", source_settings(coingecko_pages=4)))
    assert len(upstream.requests_to("coingecko")) == 1


async def test_a_run_resumes_at_the_page_the_cursor_names(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """A cursor of the current cycle (next_page 3 of 4) makes the run start at page 3."""
    upstream.coingecko_pages = 4
    started = datetime.now(UTC) - timedelta(seconds=30)
    cursor = {"cycle_started_at": started.isoformat(), "next_page": 3, "pages": 4}
    outcome = await run_source(make_source("coingecko", source_settings(coingecko_pages=4)), cursor)
    assert [r.query["page"] for r in upstream.requests_to("coingecko")] == ["3", "4"]
    assert all(b.cursor["cycle_started_at"] == started.isoformat() for b in outcome.batches)


async def test_a_resumed_cycle_that_had_ended_starts_a_new_one(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """The upstream has 250 coins (page 1 full, page 2 empty) and a run stopped after page 1:
    the next run resumes at page 2, finds it empty, and loads a new cycle from page 1 instead
    of ending as a success that fetched nothing."""
    started = datetime.now(UTC) - timedelta(seconds=30)
    cursor = {"cycle_started_at": started.isoformat(), "next_page": 2, "pages": 4}
    before = datetime.now(UTC)
    outcome = await run_source(make_source("coingecko", source_settings(coingecko_pages=4)), cursor)
    assert [r.query["page"] for r in upstream.requests_to("coingecko")] == ["2", "1", "2"]
    assert [b.label for b in outcome.batches] == ["page 1", "page 2"]
    assert len({a.record.coin_id for a in outcome.accepted}) == 250
    assert outcome.batches[-1].cursor["next_page"] is None
    new_cycle = datetime.fromisoformat(outcome.batches[0].cursor["cycle_started_at"])
    assert new_cycle >= before


NOW = datetime(2025, 2, 9, 18, 0, tzinfo=UTC)
RECENT = (NOW - timedelta(seconds=60)).isoformat()


@pytest.mark.parametrize(
    ("cursor", "expected"),
    [
        ({}, 1),
        ({"cycle_started_at": RECENT, "next_page": 3, "pages": 4}, 3),
        ({"cycle_started_at": RECENT, "next_page": None, "pages": 4}, 1),  # cycle complete
        ({"cycle_started_at": RECENT, "next_page": 3, "pages": 5}, 1),  # COINGECKO_PAGES changed
        (
            {
                "cycle_started_at": (NOW - timedelta(hours=1)).isoformat(),
                "next_page": 3,
                "pages": 4,
            },
            1,
        ),
        ({"cycle_started_at": "yesterday", "next_page": 3, "pages": 4}, 1),
        ({"cycle_started_at": RECENT, "next_page": "3", "pages": 4}, 1),
        ({"cycle_started_at": RECENT, "next_page": 9, "pages": 4}, 1),
    ],
)
def test_resume_point_only_trusts_a_current_cycle(cursor: dict[str, object], expected: int) -> None:
    """Resume only a cycle of the same page count started less than one interval ago."""
    page, started = resume_point(cursor, pages=4, now=NOW, interval_seconds=300)
    assert page == expected
    assert started == (NOW if expected == 1 else NOW - timedelta(seconds=60))


@pytest.mark.parametrize(
    ("values", "base", "headers"),
    [
        ({}, "https://api.coingecko.com/api/v3", {}),
        (
            {"coingecko_api_key": "demo-k"},
            "https://api.coingecko.com/api/v3",
            {"x-cg-demo-api-key": "demo-k"},
        ),
        (
            {"coingecko_api_key": "pro-k", "coingecko_api_plan": "pro"},
            "https://pro-api.coingecko.com/api/v3",
            {"x-cg-pro-api-key": "pro-k"},
        ),
        ({"coingecko_api_plan": "pro"}, "https://api.coingecko.com/api/v3", {}),
        (
            {
                "coingecko_api_key": "pro-k",
                "coingecko_api_plan": "pro",
                "coingecko_base_url": "http://127.0.0.1:9000/api/v3/",
            },
            "http://127.0.0.1:9000/api/v3",
            {"x-cg-pro-api-key": "pro-k"},
        ),
    ],
)
def test_plan_picks_host_and_key_header(
    values: dict[str, Any], base: str, headers: dict[str, str]
) -> None:
    """Demo keys go to api.coingecko.com, pro keys to pro-api, each in its own header."""
    target = endpoint(load_settings(env_file=None, **values).of(CoinGeckoSettings))
    assert target.base_url == base
    assert dict(target.headers) == headers


@pytest.mark.parametrize(
    ("plan", "header"), [("demo", "x-cg-demo-api-key"), ("pro", "x-cg-pro-api-key")]
)
async def test_the_key_reaches_the_upstream_in_the_plans_header(
    upstream: Upstream, source_settings: MakeSettings, plan: str, header: str
) -> None:
    """The request carries the key in the plan's header and nowhere else (not in the URL)."""
    key = f"{plan}-key-0123456789"
    upstream.valid_keys["coingecko"] = {key}
    settings = source_settings(coingecko_api_key=key, coingecko_api_plan=plan)
    outcome = await run_source(make_source("coingecko", settings))
    (request,) = upstream.requests_to("coingecko")
    assert request.headers[header] == key
    other = {"demo": "x-cg-pro-api-key", "pro": "x-cg-demo-api-key"}[plan]
    assert other not in {name.lower() for name in request.headers}
    assert key not in json.dumps(request.query)
    assert key not in outcome.batches[0].meta.url


async def test_a_renamed_price_field_rejects_every_coin_with_the_reason(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """`current_price` renamed to `price`: 250 rejections naming the missing field, none loaded."""
    upstream.renamed["coingecko"] = {"current_price": "price"}
    outcome = await run_source(make_source("coingecko", source_settings()))
    assert outcome.accepted == []
    assert len(outcome.rejected) == 250
    assert {r.reason for r in outcome.rejected} == {"current_price: missing"}
    assert outcome.rejected[0].locator == "page 1 #0 id=bitcoin"
    assert outcome.rejected[249].locator == "page 1 #249 id=basic-attention-token"
    assert json.loads(outcome.rejected[0].raw)["price"] == 96114.08481738689
