"""Request budgets, minimum spacing and concurrency, measured from the server's request log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from cryptoetl.config import Settings
from cryptoetl.sources.http_client import open_http_session
from cryptoetl.sources.ratelimit import RateLimits, TokenBucket
from tests.support.sourcing import RecordingEvents, make_source, run_source
from tests.support.upstream import Upstream, server_error

MakeSettings = Callable[..., Settings]
JITTER = 0.1  # the server stamps arrivals: a late arrival may sit closer to the next one


def assert_paced(times: list[float], interval: float) -> None:
    """No run of k + 1 consecutive requests arrived faster than k intervals (give or take jitter).

    That is the budget seen from the server: at `interval` seconds per request, any window of
    W seconds holds at most about W / interval + 1 requests.
    """
    for i, start in enumerate(times):
        for j in range(i + 1, len(times)):
            assert times[j] - start >= (j - i) * interval - JITTER, (i, j, times)


async def test_requests_never_exceed_the_budget(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """At 300 requests a minute, 6 pages plus a retry go out 0.2 s apart, the retry included."""
    upstream.coingecko_pages = 6
    upstream.program("coingecko", server_error(503))
    events = RecordingEvents()
    settings = source_settings(
        coingecko_pages=6, coingecko_requests_per_minute=300, initial_retry_delay=0.01
    )
    outcome = await run_source(make_source("coingecko", settings, events=events))
    assert len(outcome.batches) == 6
    times = [request.at for request in upstream.requests_to("coingecko")]
    assert len(times) == 7
    assert times[-1] - times[0] >= 6 * 0.2 - 0.01
    assert_paced(times, 0.2)
    assert len(events.waits) >= 5


async def test_rate_limit_delay_spaces_requests_even_with_a_large_budget(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """RATE_LIMIT_DELAY is the floor between two requests of a source."""
    upstream.coingecko_pages = 4
    settings = source_settings(coingecko_pages=4, rate_limit_delay=0.15)
    await run_source(make_source("coingecko", settings))
    times = [request.at for request in upstream.requests_to("coingecko")]
    assert len(times) == 4
    assert times[-1] - times[0] >= 3 * 0.15 - 0.01
    assert_paced(times, 0.15)


async def test_budgets_hold_across_runs_sharing_rate_limits(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """With one RateLimits per process, a second run waits for the first run's spacing."""
    limits = RateLimits()
    settings = source_settings(coinpaprika_requests_per_minute=200)  # 0.3 s apart
    for _ in range(3):
        await run_source(make_source("coinpaprika", settings, rate_limits=limits))
    times = [request.at for request in upstream.requests_to("coinpaprika")]
    assert len(times) == 3
    assert times[-1] - times[0] >= 2 * 0.3 - 0.01
    assert_paced(times, 0.3)


async def test_a_bucket_with_capacity_allows_that_burst_then_paces() -> None:
    """Capacity 3 at 60/min: three at once, the fourth a second later (injected clock)."""
    clock = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    bucket = TokenBucket(60, capacity=3, clock=lambda: clock[0], sleep=sleep)
    waits = [await bucket.acquire() for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert abs(waits[3] - 1.0) < 1e-9
    bucket.defer(5)
    assert abs(await bucket.acquire() - 5.0) < 1e-9


async def test_both_sources_fetch_concurrently(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """Each upstream 1 s late per request: together they take the slower one's time, not the sum."""
    upstream.delay["coingecko"] = 1.0
    upstream.delay["coinpaprika"] = 1.0
    upstream.coingecko_pages = 2
    settings = source_settings(coingecko_pages=2)
    async with open_http_session(settings) as session:
        gecko = make_source("coingecko", settings, session=session)
        paprika = make_source("coinpaprika", settings, session=session)
        started = time.monotonic()
        results = await asyncio.gather(run_source(gecko), run_source(paprika))
        elapsed = time.monotonic() - started
    assert [len(r.accepted) for r in results] == [500, 81]
    # CoinGecko alone needs 2 s (two pages), CoinPaprika 1 s: the sum would be 3 s.
    assert 2.0 <= elapsed < 2.8
    paprika_at = upstream.requests_to("coinpaprika")[0].at
    gecko_first = upstream.requests_to("coingecko")[0].at
    assert abs(paprika_at - gecko_first) < 0.5


async def test_background_requests_give_way_to_every_waiting_request() -> None:
    """A backfill's requests (background) share the bucket but never go before a scheduled
    run's: with both waiting, the scheduled ones take the tokens first."""
    bucket = TokenBucket(600)  # 0.1 s apart
    order: list[str] = []

    async def take(name: str, background: bool) -> None:
        await bucket.acquire(background=background)
        order.append(name)

    await bucket.acquire()  # the next token is 0.1 s away: everyone below waits
    backfill = [asyncio.create_task(take(f"b{i}", True)) for i in range(3)]
    await asyncio.sleep(0)
    scheduled = [asyncio.create_task(take(f"s{i}", False)) for i in range(3)]
    await asyncio.gather(*backfill, *scheduled)
    # only the background request already holding the bucket goes first
    assert order == ["b0", "s0", "s1", "s2", "b1", "b2"]
